"""A job's events from JOBWIRE_EVT (transitions, progress, deletion) and its latest progress."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec
from nats.js.errors import NotFoundError

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj

from ..jetstream import OrderedReader, last_seq, seq_of
from ..jobs.lookup import is_done
from ..problems import NotFound
from ..resources import Resources
from ..waiters import decode_event


class NoProgress(NotFound):
    slug, title = "no-progress", "No progress yet"


@dataclass
class EventRecord:
    seq: int
    kind: str
    raw: bytes


def _ends_stream(event: v1.Event, max_attempts: int) -> bool:
    if isinstance(event, v1.JobDeleted):
        return True
    return isinstance(event, v1.JobTransitioned) and v1.is_finished(
        event.state, attempts_left=event.attempt < max_attempts
    )


def _kind(event: v1.Event) -> str:
    """The message's own tag: ``transition``, ``progress`` or ``deleted``."""
    return str(type(event).__struct_config__.tag)


async def read_events(
    res: Resources, job: v1.Job, *, after: int, follow: bool
) -> AsyncIterator[EventRecord | None]:
    """Events after sequence ``after``, ending after the finishing transition; None marks a quiet spell.

    A job already finished when asked has all its events stored: we read up to the current end.
    """
    js, subject = res.bus.js, sj.job_events_filter(job.id)
    end: int | None = None
    if not follow or is_done(job):
        end = await last_seq(js, sj.EVT_STREAM, subject)
        if end <= after:
            return
    async with OrderedReader(js, sj.EVT_STREAM, subject, after=after) as reader:
        while True:
            msg = await reader.next(res.settings.sse_keepalive)
            if msg is None:
                yield None
                continue
            seq = seq_of(msg)
            try:
                event: v1.Event | None = decode_event(msg.data)
            except msgspec.MsgspecError:
                event = None  # pass on what newer readers may understand; never stop on it
            kind = _kind(event) if event is not None else msg.subject.rsplit(".", 1)[-1]
            yield EventRecord(seq=seq, kind=kind, raw=msg.data)
            if end is not None and seq >= end:
                return
            if event is not None and _ends_stream(event, job.max_attempts):
                return


async def last_progress(res: Resources, job_id: str) -> v1.JobProgress:
    """The newest progress message of the job (a direct get: no consumer, one round trip)."""
    try:
        raw = await res.bus.js.get_last_msg(sj.EVT_STREAM, sj.event_subject(job_id, "progress"), direct=True)
    except NotFoundError:
        raise NoProgress(f"job {job_id} has reported no progress yet") from None
    return v1.decode(raw.data or b"", v1.JobProgress)
