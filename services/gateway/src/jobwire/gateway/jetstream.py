"""Reading JetStream streams by sequence: the last sequence on a subject, and an ordered reader.

Logs, events and artifact chunks are read with an ephemeral *pull* consumer (no acks, deleted on close,
dropped by the server after ``INACTIVE`` seconds should the gateway vanish), in batches of ``BATCH``
messages, and only when the previous batch has been taken: a client that reads slowly or not at all
holds at most two batches in the gateway (one taken, one a lingering pull may still deliver), never the
rest of the stream. The stream sequence doubles as the SSE event id: resuming is starting after it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from types import TracebackType
from typing import Any

import anyio
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
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


#: messages asked for per pull: with log chunks of at most 64 KiB, about 0.5 MiB per reader at most
BATCH = 8
#: how long one pull waits on the server for new messages before it is asked again
PULL_WAIT = 5.0
#: seconds after which the server deletes a reader's consumer that nobody pulls from (gateway gone)
INACTIVE = 120.0


class OrderedReader:
    """Messages on ``subject`` in ``stream`` after stream sequence ``after``, in order, without repeats,
    pulled a batch at a time as they are taken (backpressure: a stalled client stalls the pulls)."""

    def __init__(self, js: JetStreamContext, stream: str, subject: str, *, after: int = 0) -> None:
        self._js = js
        self._stream = stream
        self._subject = subject
        self._after = after
        self._sub: JetStreamContext.PullSubscription | None = None
        self._pending: asyncio.Task[list[Msg]] | None = None
        self._ready: deque[Msg] = deque()

    async def __aenter__(self) -> OrderedReader:
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=INACTIVE,
            mem_storage=True,
            num_replicas=1,
        )
        if self._after > 0:
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = self._after + 1
        self._sub = await self._js.pull_subscribe(
            self._subject,
            stream=self._stream,
            config=config,
            # what a pull can bring is bounded by BATCH; these only must never drop a message
            pending_msgs_limit=16 * BATCH,
            pending_bytes_limit=0,
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
                self._pending = None
            self._ready.clear()
            if self._sub is not None:
                consumer = self._sub._consumer
                with contextlib.suppress(Exception):
                    await self._sub.unsubscribe()
                with contextlib.suppress(Exception):
                    await self._js.delete_consumer(self._stream, consumer)
                self._sub = None

    async def _pull(self) -> list[Msg]:
        assert self._sub is not None
        while True:
            try:
                msgs = await self._sub.fetch(BATCH, timeout=PULL_WAIT)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            if msgs:
                return msgs

    async def next(self, timeout: float | None, *, wake: asyncio.Future[Any] | None = None) -> Msg | None:
        """The next message; None after ``timeout`` seconds, or as soon as ``wake`` completes.

        A pull still on its way when we return None is kept for the next call, never lost.
        """
        assert self._sub is not None, "use OrderedReader as an async context manager"
        if self._ready:
            return self._ready.popleft()
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._pull())
        waiting: set[asyncio.Future[Any]] = {self._pending}
        if wake is not None:
            waiting.add(wake)
        done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if self._pending not in done:
            return None
        task, self._pending = self._pending, None
        self._ready.extend(task.result())
        return self._ready.popleft()
