"""The loop's bookkeeping for one attempt, saved through the backend so a restart resumes it."""

from __future__ import annotations

import msgspec

from jobwire.contracts.v1 import JobState


class LogCursor(msgspec.Struct, kw_only=True):
    """``offset``: every byte before it is published. ``pending``: the chunk ``[offset, pending)``
    chosen before publishing; after a crash exactly that chunk is re-sent, so its message id and
    bytes match the first send and JetStream drops the copy."""

    offset: int = 0
    pending: int = 0


class StopRequest(msgspec.Struct, kw_only=True):
    """Why the executor stops a run, and how far it got (TERM sent at ``at``, KILL after ``grace``)."""

    outcome: JobState
    reason: str
    grace: float
    at: float
    killed: bool = False


class Waiting(msgspec.Struct, kw_only=True):
    """What was last reported of a run that waits to run (its batch system queues or holds it)."""

    reason: str | None = None
    held: bool = False


class Journal(msgspec.Struct, kw_only=True):
    #: when the attempt was launched (submitted, for a batch job)
    started_at: float
    #: when it was first seen running and ``running`` reported; timeouts count from here
    running_at: float | None = None
    #: the last ``starting`` report of a waiting run, and how many were sent (each has its own msg id)
    waiting: Waiting | None = None
    waiting_reports: int = 0
    logs: dict[str, LogCursor] = {}
    progress_digest: str | None = None
    stop: StopRequest | None = None
    #: W3C trace headers of the RunJob, so the final report continues its trace
    trace: dict[str, str] = {}

    def cursor(self, stream: str) -> LogCursor:
        return self.logs.setdefault(stream, LogCursor())


def encode(journal: Journal) -> bytes:
    return msgspec.json.encode(journal)


def decode(data: bytes) -> Journal:
    return msgspec.json.decode(data, type=Journal)
