"""HTTP for ``/v1/jobs/{id}/logs``: SSE when the client asks for ``text/event-stream``, else plain text."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get
from litestar.params import QueryParameter
from litestar.response import Stream

from jobwire.contracts.v1 import subjects as sj

from ..jobs.lookup import require_job
from ..params import Caller, JobId, LastEventId, Offset, Res
from ..sse import SseItem, resume_after, sse_response, wants_sse
from ..streams import holding, require_bus
from .service import STREAMS, LogRecord, read_logs

TEXT_PLAIN = "text/plain; charset=utf-8"


async def _as_sse(records: AsyncIterator[LogRecord | None]) -> AsyncIterator[SseItem | None]:
    async for r in records:
        yield None if r is None else SseItem(id=r.seq, event="log", data=r.raw.decode())


async def _as_text(records: AsyncIterator[LogRecord | None]) -> AsyncIterator[bytes]:
    async for r in records:
        if r is not None and r.chunk.data:
            yield r.chunk.data.encode()


async def _of_attempt(
    records: AsyncIterator[LogRecord | None], attempt: int | None, streams: Sequence[str] | None = None
) -> AsyncIterator[LogRecord | None]:
    """Only chunks of ``attempt`` (every attempt's output shares the job's log subjects), and of
    ``streams`` when given (one rank's, read through the filter that covers every rank's)."""
    async for r in records:
        if r is None or (
            (attempt is None or r.chunk.attempt == attempt) and (streams is None or r.chunk.stream in streams)
        ):
            yield r


class LogController(Controller):
    path = "/v1/jobs/{job_id:str}/logs"
    tags = ["logs"]

    @get(
        "/",
        summary="A job's output",
        description=(
            "With `Accept: text/event-stream`: one `log` event per chunk (data = the LogChunk JSON), "
            "`id` = its stream sequence, so `Last-Event-ID` resumes without gaps or repeats, and a final "
            "`end` event. "
            "Otherwise the concatenated text. `follow` keeps the response open until the job has finished "
            "and its output ended."
        ),
        opt={"scope": "jobs:read"},
    )
    async def logs(
        self,
        request: Request[Any, Any, Any],
        res: Res,
        caller: Caller,
        job_id: JobId,
        follow: Annotated[bool, QueryParameter(description="Stay open until the job's output ends")] = False,
        offset: Offset = 0,
        stream: Annotated[
            Literal["stdout", "stderr"] | None, QueryParameter(description="Only this one")
        ] = None,
        last_event_id: LastEventId = None,
        attempt: Annotated[
            int | None, QueryParameter(ge=1, description="Only this attempt's output (default: all)")
        ] = None,
        rank: Annotated[
            int | None,
            QueryParameter(
                ge=0, le=4095, description="Only this rank's output, of a gang job (default: all)"
            ),
        ] = None,
    ) -> Stream:
        job = await require_job(res, job_id, owner=caller.visible_owner)
        after = resume_after(offset, last_event_id)
        streams = tuple(sj.rank_stream(s, rank) for s in ((stream,) if stream else STREAMS))
        require_bus(res)
        slot = res.streams.take(caller.owner)
        records = _of_attempt(
            holding(slot, read_logs(res, job, after=after, follow=follow, streams=streams)),
            attempt,
            streams if rank is not None else None,
        )
        if wants_sse(request):
            return sse_response(_as_sse(records))
        return Stream(_as_text(records), media_type=TEXT_PLAIN, headers={"X-Accel-Buffering": "no"})
