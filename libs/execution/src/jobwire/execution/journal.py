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


class Journal(msgspec.Struct, kw_only=True):
    started_at: float
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
