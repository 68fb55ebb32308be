"""Client-side shapes around the v1 contracts: pages, submissions, log pieces, and reading SSE payloads.

Two log formats are understood: the gateway's (``event: log``, data = a ``LogChunk`` JSON) and the plain
one (``event: stdout|stderr``, data = the text), so the CLI works against either.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from jobwire.contracts import v1

from .sse import SseEvent

LOG_STREAMS = ("stdout", "stderr")


class JobPage(msgspec.Struct, kw_only=True):
    """One page of ``GET /v1/jobs``; pass ``next_cursor`` back for the next."""

    items: list[v1.Job]
    next_cursor: str | None = None


class Submission(msgspec.Struct, kw_only=True, frozen=True):
    """A submitted job; ``accepted`` is False when it is only durably queued (HTTP 202)."""

    job: v1.Job
    accepted: bool = True
    replayed: bool = False


class BatchSubmission(msgspec.Struct, kw_only=True, frozen=True):
    """Jobs submitted together: their ids in the order given; ``accepted`` is False when they are only
    durably queued (HTTP 202)."""

    ids: list[str]
    accepted: bool = True


class LogEvent(msgspec.Struct, kw_only=True, frozen=True):
    """A piece of a job's output; ``seq`` is its resume point when the server gives one."""

    stream: str
    data: str
    seq: int | None = None
    attempt: int | None = None


def log_event_of(sse: SseEvent) -> LogEvent | None:
    """The output in one SSE event, or None for anything else (eof markers, unknown events)."""
    seq = int(sse.id) if sse.id and sse.id.isdigit() else None
    if sse.event in LOG_STREAMS:
        return LogEvent(stream=sse.event, data=sse.data, seq=seq) if sse.data else None
    if sse.event not in ("log", "message"):
        return None
    try:
        chunk = v1.decode(sse.data, v1.LogChunk)
    except msgspec.MsgspecError:
        return None
    if not chunk.data:
        return None
    return LogEvent(stream=chunk.stream, data=chunk.data, seq=seq, attempt=chunk.attempt)


def event_of(sse: SseEvent, job_id: str) -> v1.Event | None:
    """A job event from an SSE payload; unknown kinds are skipped so newer servers do not break us.

    Abbreviated events (``{"kind": "progress", "progress": {...}}``) get the job id, attempt 0 and
    the time of arrival filled in.
    """
    try:
        raw: Any = msgspec.json.decode(sse.data)
    except msgspec.DecodeError:
        return None
    if not isinstance(raw, dict):
        return None
    raw.setdefault("kind", sse.event)
    raw.setdefault("job_id", job_id)
    if raw["kind"] == "progress":
        raw.setdefault("attempt", 0)
        raw.setdefault("at", datetime.now(UTC).isoformat())
    try:
        event: v1.Event = msgspec.convert(raw, v1.Event)
        return event
    except msgspec.ValidationError:
        return None


def job_finished(job: v1.Job) -> bool:
    """Nothing more will happen to the job (a lost job with attempts left will be queued again)."""
    return v1.is_finished(job.state, attempts_left=job.attempt < job.max_attempts)


def exit_status(job: v1.Job) -> int:
    """What a shell should see for the job: its exit code, or 1 when it did not succeed without one."""
    code = job.exit_code
    if code is not None and code < 0:
        code = 128 + min(-code, 127)  # killed by a signal, as shells report it
    if code is not None and code != 0:
        return min(code, 255)
    return 0 if job.state is v1.JobState.SUCCEEDED else 1


def items_of(raw: Any) -> Any:
    """List endpoints answer ``{"items": [...]}`` (the gateway) or a bare list; accept both."""
    if isinstance(raw, dict) and "items" in raw:
        return raw["items"]
    return raw
