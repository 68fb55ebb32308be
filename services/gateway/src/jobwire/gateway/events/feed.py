"""``GET /v1/events``: every job's state changes as server-sent events, for live lists (the dashboard's).

A job's own ``/events`` follows one job; a list of jobs needs them all without one connection per job.
The feed starts at the stream's current end (or after ``Last-Event-ID``), sends only ``transition``
events, and only those of the caller's own jobs unless the caller is an admin: another owner's job does
not exist for a user here either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
from litestar import Controller, get
from litestar.response import ServerSentEvent

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj

from ..jetstream import OrderedReader, last_seq, seq_of
from ..params import Caller, LastEventId, Res
from ..resources import Resources
from ..sse import SseItem, resume_after, sse_response
from ..streams import holding, require_bus
from ..waiters import decode_event

TRANSITIONS = "jobwire.evt.job.*.*"


async def read_feed(res: Resources, *, owner: str | None, after: int | None) -> AsyncIterator[SseItem | None]:
    """Transitions after ``after`` (None: from now) of ``owner``'s jobs (None: all); None = quiet."""
    js = res.bus.js
    end = await last_seq(js, sj.EVT_STREAM, TRANSITIONS)
    # a resume point past the end (a stream since reset, a made-up id) starts at the end: waiting for
    # sequences that may never be written would leave the client without the events that do come
    start = end if after is None else min(after, end)
    async with OrderedReader(js, sj.EVT_STREAM, TRANSITIONS, after=start) as reader:
        while True:
            msg = await reader.next(res.settings.sse_keepalive)
            if msg is None:
                yield None
                continue
            try:
                event = decode_event(msg.data)
            except msgspec.MsgspecError:
                continue  # a newer writer's message: a live list has nothing to show for it
            if not isinstance(event, v1.JobTransitioned):
                continue
            if owner is not None and event.owner != owner:
                continue
            yield SseItem(id=seq_of(msg), event="transition", data=msg.data.decode())


class FeedController(Controller):
    path = "/v1/events"
    tags = ["events"]

    @get(
        "/",
        summary="Every visible job's state changes as server-sent events",
        description=(
            "Event `transition` (data = the event JSON as on the bus), `id` = the stream sequence; starts "
            "at the current end, or after `Last-Event-ID`. Only the caller's own jobs unless admin. "
            "Never ends by itself."
        ),
        opt={"scope": "jobs:read"},
    )
    async def feed(self, res: Res, caller: Caller, last_event_id: LastEventId = None) -> ServerSentEvent:
        after = resume_after(0, last_event_id) if last_event_id else None
        require_bus(res)
        slot = res.streams.take(caller.owner)
        return sse_response(holding(slot, read_feed(res, owner=caller.visible_owner, after=after)))
