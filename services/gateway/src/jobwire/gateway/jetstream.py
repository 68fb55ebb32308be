"""Reading JetStream streams by sequence: the last sequence on a subject, and an ordered reader.

Logs and events are read with an *ordered* push consumer (ephemeral, flow-controlled, re-created by the
client on a gap), so a reader gets every message after its start sequence exactly once and in order.
The stream sequence doubles as the SSE event id: resuming is starting after it.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any

import anyio
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError


async def last_seq(js: JetStreamContext, stream: str, subject: str) -> int:
    """Sequence of the newest message on ``subject`` (wildcards allowed), 0 when there is none."""
    try:
        raw = await js.get_msg(stream, subject=subject)
    except NotFoundError:
        return 0
    return raw.seq or 0


def seq_of(msg: Msg) -> int:
    return int(msg.metadata.sequence.stream)


class OrderedReader:
    """Messages on ``subject`` in ``stream`` after stream sequence ``after``, in order, without repeats."""

    def __init__(self, js: JetStreamContext, stream: str, subject: str, *, after: int = 0) -> None:
        self._js = js
        self._stream = stream
        self._subject = subject
        self._after = after
        self._sub: JetStreamContext.PushSubscription | None = None
        self._pending: asyncio.Task[Msg] | None = None

    async def __aenter__(self) -> OrderedReader:
        if self._after > 0:
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self._after + 1
            )
        else:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        self._sub = await self._js.subscribe(
            self._subject, stream=self._stream, ordered_consumer=True, config=config
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Runs on client disconnect too, inside a cancelled scope: shield the clean-up.
        with anyio.CancelScope(shield=True):
            if self._pending is not None:
                self._pending.cancel()
                await asyncio.gather(self._pending, return_exceptions=True)
            if self._sub is not None:
                # The name changes when the client re-creates the consumer after a gap; nats-py keeps the
                # current one here. Deleting it spares the server an idle consumer per closed reader.
                consumer = getattr(self._sub, "_consumer", None)
                with contextlib.suppress(Exception):
                    await self._sub.unsubscribe()
                if consumer:
                    with contextlib.suppress(Exception):
                        await self._js.delete_consumer(self._stream, consumer)

    async def next(self, timeout: float | None, *, wake: asyncio.Future[Any] | None = None) -> Msg | None:
        """The next message; None after ``timeout`` seconds, or as soon as ``wake`` completes.

        A message still on its way when we return None is kept for the next call, never lost.
        """
        assert self._sub is not None, "use OrderedReader as an async context manager"
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._sub.next_msg(timeout=None))
        waiting: set[asyncio.Future[Any]] = {self._pending}
        if wake is not None:
            waiting.add(wake)
        done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if self._pending not in done:
            return None
        task, self._pending = self._pending, None
        return task.result()
