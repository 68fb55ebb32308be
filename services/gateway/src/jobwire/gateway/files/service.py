"""Asking a node's executor for a job's files (``jobwire.files.<node>``, request/reply).

A file is fetched chunk by chunk (one request per :data:`CHUNK_MAX` bytes) and streamed to the
client as it arrives, so a large checkpoint never sits whole in the gateway; the whole download is
capped by ``JOBWIRE_GATEWAY_FILE_MAX_BYTES``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.contracts.v1.files import CHUNK_MAX, FilesReply, FilesRequest

from ..problems import Conflict, InvalidParameter, NotFound, Problem
from ..resources import Resources

REQUEST_TIMEOUT = 15.0


class FileNotFound(NotFound):
    slug, title = "file-not-found", "File not found"


class NodeUnavailable(Problem):
    status, slug, title = 503, "node-unavailable", "Node unavailable"


class FileTooLarge(Problem):
    status, slug, title = 413, "file-too-large", "File too large"


class NotSupported(Problem):
    status, slug, title = 501, "not-supported", "Not supported"


class FileList(msgspec.Struct, kw_only=True):
    items: list[v1.FileEntry]
    #: entries beyond the listing's limit, left out
    truncated: int = 0


@dataclass
class Download:
    size: int
    chunks: AsyncIterator[bytes]


def _where(job: v1.Job) -> tuple[str, int]:
    if job.node is None or job.attempt < 1 or job.state in (v1.JobState.QUEUED,):
        raise Conflict(
            f"job {job.id} is {job.state.value}: it has no directory on a node yet",
            extra={"state": job.state.value},
        )
    return job.node, job.attempt


async def _ask(res: Resources, node: str, req: FilesRequest) -> FilesReply:
    try:
        msg = await res.bus.nc.request(
            sj.files_subject(node), msgspec.json.encode(req), timeout=REQUEST_TIMEOUT
        )
    except (NoRespondersError, NatsTimeout):
        raise NodeUnavailable(f"node {node} does not answer for job {req.job_id}'s files") from None
    reply = msgspec.json.decode(msg.data, type=FilesReply)
    if reply.status == 200:
        return reply
    detail = reply.error or f"node {node} answered {reply.status}"
    problem: type[Problem] = {
        400: InvalidParameter,
        404: FileNotFound,
        409: Conflict,
        501: NotSupported,
    }.get(reply.status, NodeUnavailable)
    raise problem(detail, extra={"path": req.path})


async def list_files(res: Resources, job: v1.Job, path: str) -> FileList:
    node, attempt = _where(job)
    reply = await _ask(res, node, FilesRequest(job_id=job.id, attempt=attempt, path=path))
    return FileList(items=reply.entries or [], truncated=reply.truncated)


async def open_file(res: Resources, job: v1.Job, path: str, offset: int, limit: int | None) -> Download:
    """The file's first chunk is read before answering (so a missing file is a 404, not a broken
    stream); the rest follows as the client reads."""
    node, attempt = _where(job)
    cap = res.settings.file_max_bytes
    first = await _ask(
        res, node, FilesRequest(job_id=job.id, attempt=attempt, path=path, read=True, offset=offset)
    )
    total = first.size or 0
    end = total if limit is None else min(total, offset + limit)
    want = max(0, end - offset)
    if want > cap:
        raise FileTooLarge(
            f"{path} has {want} bytes from offset {offset}; at most {cap} are sent at once "
            "(JOBWIRE_GATEWAY_FILE_MAX_BYTES): ask for a part with offset and limit",
            extra={"size": total, "max": cap},
        )

    async def chunks() -> AsyncIterator[bytes]:
        sent, data = 0, (first.data or b"")[:want]
        while True:
            if data:
                yield data
                sent += len(data)
            if sent >= want or not data:
                return
            reply = await _ask(
                res,
                node,
                FilesRequest(
                    job_id=job.id,
                    attempt=attempt,
                    path=path,
                    read=True,
                    offset=offset + sent,
                    size=min(CHUNK_MAX, want - sent),
                ),
            )
            data = (reply.data or b"")[: want - sent]

    return Download(size=want, chunks=chunks())
