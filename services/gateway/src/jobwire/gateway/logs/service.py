"""Reading a job's log chunks from JOBWIRE_LOG, once or following the job until its output ends.

Resume points are stream sequences. A non-follow read ends at the stream's end as it was when asked.
A follow ends once the job is finished and every stream of its last attempt has delivered its ``eof``
chunk, or, when an eof never comes (the executor vanished), after ``log_eof_grace`` seconds of silence.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj

from ..jetstream import OrderedReader, last_seq, seq_of
from ..jobs.lookup import is_done, load_job
from ..resources import Resources

STREAMS = ("stdout", "stderr")


@dataclass
class LogRecord:
    seq: int
    chunk: v1.LogChunk
    raw: bytes


def log_filter(job_id: str, streams: Sequence[str]) -> str:
    return sj.log_subject(job_id, streams[0]) if len(streams) == 1 else sj.job_logs_filter(job_id)


async def current_end(js: JetStreamContext, job_id: str, streams: Sequence[str]) -> int:
    """The last sequence of the job's logs right now (0 when it has none)."""
    return await last_seq(js, sj.LOG_STREAM, log_filter(job_id, streams))


async def closed_end(js: JetStreamContext, job_id: str, attempt: int, streams: Sequence[str]) -> int | None:
    """Where a finished attempt's logs end: the last eof's sequence, or None while an eof is missing."""
    end = 0
    for stream in streams:
        try:
            raw = await js.get_last_msg(sj.LOG_STREAM, sj.log_subject(job_id, stream), direct=True)
        except NotFoundError:
            continue  # no output on this stream at all
        chunk = v1.decode(raw.data or b"{}", v1.LogChunk)
        if not chunk.eof or chunk.attempt < attempt:
            return None
        end = max(end, raw.seq or 0)
    return end


def _record(msg_data: bytes, seq: int) -> LogRecord:
    return LogRecord(seq=seq, chunk=v1.decode(msg_data, v1.LogChunk), raw=msg_data)


async def read_logs(
    res: Resources, job: v1.Job, *, after: int, follow: bool, streams: Sequence[str]
) -> AsyncIterator[LogRecord | None]:
    """Chunks after sequence ``after``; ``None`` marks a quiet spell (time for a keep-alive)."""
    if follow:
        async for item in _follow(res, job, after=after, streams=streams):
            yield item
        return
    js = res.bus.js
    end = await current_end(js, job.id, streams)
    if end <= after:
        return
    async with OrderedReader(js, sj.LOG_STREAM, log_filter(job.id, streams), after=after) as reader:
        while True:
            msg = await reader.next(res.settings.sse_keepalive)
            if msg is None:
                if after >= await current_end(js, job.id, streams):
                    return  # the end we aimed for was removed by the stream's limits meanwhile
                yield None
                continue
            after = seq_of(msg)
            yield _record(msg.data, after)
            if after >= end:
                return


async def _follow(
    res: Resources, job: v1.Job, *, after: int, streams: Sequence[str]
) -> AsyncIterator[LogRecord | None]:
    js, settings = res.bus.js, res.settings
    loop = asyncio.get_running_loop()

    def finishes(event: v1.Event) -> bool:
        if isinstance(event, v1.JobDeleted):
            return True  # its logs are being purged: nothing more will come
        return isinstance(event, v1.JobTransitioned) and v1.is_finished(
            event.state, attempts_left=event.attempt < job.max_attempts
        )

    with res.waiters.watch(job.id, finishes) as finished:
        job = await load_job(res, job.id) or job  # read again now that a finish cannot slip past us
        attempt: int | None = job.attempt if is_done(job) else None  # the last attempt, once finished
        end = await closed_end(js, job.id, attempt, streams) if attempt is not None else None
        quiet_since = loop.time()
        async with OrderedReader(js, sj.LOG_STREAM, log_filter(job.id, streams), after=after) as reader:
            while end is None or after < end:
                if attempt is None and finished.done():
                    event = finished.result()
                    attempt = event.attempt if isinstance(event, v1.JobTransitioned) else job.attempt
                    end = await closed_end(js, job.id, attempt, streams)
                    quiet_since = loop.time()
                    continue
                timeout = settings.sse_keepalive
                if attempt is not None:
                    timeout = min(timeout, max(0.0, quiet_since + settings.log_eof_grace - loop.time()))
                msg = await reader.next(timeout, wake=finished if attempt is None else None)
                if msg is not None:
                    after, quiet_since = seq_of(msg), loop.time()
                    record = _record(msg.data, after)
                    yield record
                    if attempt is not None and end is None and record.chunk.eof:
                        end = await closed_end(js, job.id, attempt, streams)
                elif attempt is None and finished.done():
                    continue  # woken by the finish: work out where the logs end
                elif attempt is not None and loop.time() - quiet_since >= settings.log_eof_grace:
                    return  # finished, but an eof never came: the executor is gone
                else:
                    yield None
