"""Requests that wait for a job's next event, resolved by long-lived core NATS subscriptions.

A submit waits for its acceptance, a cancel for the terminal transition, a delete for ``deleted``. One
subscription per process and event kind a waiter can need (``KINDS``) serves them all: no polling, no
consumer per request. ``starting`` and ``running`` are left out, half of a job's events under an
executor, which every gateway process took off the wire, parsed and dropped for nobody; the few waits
that need them (hold, release) subscribe to their one job's events while they wait
(``watch_every_event``). A waiter is registered *before* the command is published, so an event cannot
slip past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj

log = logging.getLogger(__name__)

#: the event kinds every job's waiters may need: every state but ``starting`` and ``running``, and deletion
KINDS = (*(s.value for s in v1.JobState if s not in (v1.JobState.STARTING, v1.JobState.RUNNING)), "deleted")
SUBJECTS = tuple(f"{sj.JOB_EVENT_SUBJECTS.removesuffix('>')}*.{kind}" for kind in KINDS)
_EVENTS: msgspec.json.Decoder[v1.Event] = msgspec.json.Decoder(v1.Event)
Match = Callable[[v1.Event], bool]


@dataclass
class _Waiter:
    match: Match
    future: asyncio.Future[v1.Event] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class EventWaiters:
    """Futures keyed by job id, completed by the first matching event on the bus."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._by_job: dict[str, list[_Waiter]] = {}
        self._subs: list[Subscription] = []

    async def start(self) -> None:
        self._subs = [await self._nc.subscribe(subject, cb=self._on_message) for subject in SUBJECTS]
        await self._nc.flush()  # the server knows the interest before any request can wait on it

    async def stop(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs = []
        for waiters in self._by_job.values():
            for w in waiters:
                w.future.cancel()
        self._by_job.clear()

    @contextlib.contextmanager
    def watch(self, job_id: str, match: Match) -> Iterator[asyncio.Future[v1.Event]]:
        """A future for the first event of ``job_id`` that ``match`` accepts, while the block runs."""
        waiter = _Waiter(match)
        self._by_job.setdefault(job_id, []).append(waiter)
        try:
            yield waiter.future
        finally:
            waiters = self._by_job.get(job_id, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._by_job.pop(job_id, None)
            if not waiter.future.done():
                waiter.future.cancel()

    @contextlib.asynccontextmanager
    async def watch_every_event(self, job_id: str, match: Match) -> AsyncIterator[asyncio.Future[v1.Event]]:
        """``watch`` for a wait that needs kinds outside ``KINDS`` (a hold answered by ``running``, a
        release by ``starting``): this one job's events all come while the block runs."""
        sub = await self._nc.subscribe(sj.event_subject(job_id, "*"), cb=self._on_message)
        try:
            await self._nc.flush()  # subscribed before the command goes out
            with self.watch(job_id, match) as future:
                yield future
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _on_message(self, msg: Msg) -> None:
        tokens = msg.subject.split(".")
        if len(tokens) != 5:
            return
        waiters = self._by_job.get(tokens[3])
        if not waiters:
            return  # nobody waits for this job: skip decoding (progress can be frequent)
        try:
            event = decode_event(msg.data)
        except msgspec.MsgspecError:  # a malformed event must not stop the subscription
            log.warning("undecodable event on %s", msg.subject)
            return
        for w in list(waiters):
            if not w.future.done() and w.match(event):
                w.future.set_result(event)


def decode_event(data: bytes) -> v1.Event:
    """Any event message (lenient: unknown fields are ignored, as for every bus reader)."""
    return _EVENTS.decode(data)


async def wait(future: asyncio.Future[v1.Event], timeout: float) -> v1.Event | None:
    """The event, or None when it did not come within ``timeout`` seconds.

    A deadline on the awaiting task rather than ``wait_for(shield(...))``, which made a shield future, a
    waiter future and their callbacks on every submit. The future is the caller's own (``watch``), so
    the timeout cancelling it loses nothing; an event that came as the deadline struck still counts."""
    try:
        async with asyncio.timeout(timeout):
            return await future
    except TimeoutError:
        return future.result() if future.done() and not future.cancelled() else None
