"""HTTP for ``/v1/jobs/{id}/events`` (SSE) and ``/v1/jobs/{id}/progress``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from litestar import Controller, get
from litestar.params import QueryParameter
from litestar.response import ServerSentEvent

from jobwire.contracts import v1

from ..jobs.lookup import require_job
from ..params import Caller, JobId, LastEventId, Offset, Res
from ..sse import SseItem, resume_after, sse_response
from ..streams import holding, require_bus
from .service import EventRecord, last_progress, read_events


async def _as_sse(records: AsyncIterator[EventRecord | None]) -> AsyncIterator[SseItem | None]:
    async for r in records:
        yield None if r is None else SseItem(id=r.seq, event=r.kind, data=r.raw.decode())


class EventController(Controller):
    path = "/v1/jobs/{job_id:str}"
    tags = ["events"]

    @get(
        "/events",
        summary="A job's events as server-sent events",
        description=(
            "Events `transition`, `progress` and `deleted` (data = the event JSON as on the bus), `id` = the "
            "stream sequence; `Last-Event-ID` resumes after it. Ends, with an `end` event, after the job's "
            "finishing transition."
        ),
        opt={"scope": "jobs:read"},
    )
    async def events(
        self,
        res: Res,
        caller: Caller,
        job_id: JobId,
        follow: Annotated[bool, QueryParameter(description="Wait for events until the job finishes")] = True,
        offset: Offset = 0,
        last_event_id: LastEventId = None,
    ) -> ServerSentEvent:
        job = await require_job(res, job_id, owner=caller.visible_owner)
        after = resume_after(offset, last_event_id)
        require_bus(res)
        slot = res.streams.take(caller.owner)
        return sse_response(_as_sse(holding(slot, read_events(res, job, after=after, follow=follow))))

    @get("/progress", summary="What the job last reported as progress", opt={"scope": "jobs:read"})
    async def progress(self, res: Res, caller: Caller, job_id: JobId) -> v1.JobProgress:
        await require_job(res, job_id, owner=caller.visible_owner)
        return await last_progress(res, job_id)
