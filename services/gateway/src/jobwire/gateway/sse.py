"""Server-sent events: one item per stream message, ``id`` = its stream sequence (so ``Last-Event-ID``
resumes exactly after it), a comment as keep-alive in quiet spells, and a final ``end`` event so a
client can tell a finished stream from a dropped connection (EventSource would reconnect otherwise).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.response import ServerSentEvent, ServerSentEventMessage

from .problems import InvalidParameter

EVENT_STREAM = "text/event-stream"
#: a stream sequence as ``Last-Event-ID`` carries it (18 digits stay below 2**63)
SEQUENCE = re.compile(r"[0-9]{1,18}")


@dataclass
class SseItem:
    id: int
    event: str
    data: str


def wants_sse(request: Request[Any, Any, Any]) -> bool:
    """True when the client prefers ``text/event-stream`` over plain text (``*/*`` gets plain text)."""
    return request.accept.best_match(["text/plain", EVENT_STREAM]) == EVENT_STREAM


def resume_after(offset: int, last_event_id: str | None) -> int:
    """Where to start: after ``Last-Event-ID`` when the client sends one (a reconnect), else ``offset``."""
    text = (last_event_id or "").strip(" \t")
    if not text:
        return offset
    if not SEQUENCE.fullmatch(text):  # digits only: int() would also take "+1", "1_0" and other scripts
        raise InvalidParameter(f"header `Last-Event-ID`: {text[:64]!r} is not a stream sequence")
    return int(text)


def sse_response(items: AsyncIterator[SseItem | None]) -> ServerSentEvent:
    async def messages() -> AsyncIterator[ServerSentEventMessage]:
        async for item in items:
            if item is None:
                yield ServerSentEventMessage(comment="keep-alive", data=None)
            else:
                yield ServerSentEventMessage(id=item.id, event=item.event, data=item.data)
        yield ServerSentEventMessage(event="end", data="")

    return ServerSentEvent(messages(), headers={"X-Accel-Buffering": "no"})
