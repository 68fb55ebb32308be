"""How many log and event streams one owner may hold open on this gateway process.

Each open stream costs a JetStream consumer and a bounded buffer (``jetstream.BATCH`` messages); a
limit per owner keeps one user's stalled followers from taking the gateway's memory or the server's
consumers from everyone else. Over the limit the answer is a 429 problem with ``Retry-After``.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, TypeVar

from .problems import NotReady, TooManyRequests

if TYPE_CHECKING:
    from .resources import Resources

T = TypeVar("T")
#: seconds a refused client is asked to wait: streams end when their job's output does
RETRY_AFTER = 5


class Slot:
    """One open stream of one owner; ``release`` is idempotent (the stream's end, or its collection)."""

    def __init__(self, slots: StreamSlots, owner: str) -> None:
        self._slots, self._owner, self._held = slots, owner, True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots.give(self._owner)


class StreamSlots:
    def __init__(self, per_owner: int) -> None:
        self.per_owner = per_owner
        self.open: Counter[str] = Counter()

    def take(self, owner: str) -> Slot:
        """A slot for one more stream of ``owner``, or a 429 problem when it holds ``per_owner`` already."""
        if self.open[owner] >= self.per_owner:
            raise TooManyRequests(
                f"{owner!r} has {self.open[owner]} log or event streams open on this gateway (at most "
                f"{self.per_owner}); close one or try again later",
                extra={"limit": "streams_per_owner"},
                headers={"Retry-After": str(RETRY_AFTER)},
            )
        self.open[owner] += 1
        return Slot(self, owner)

    def give(self, owner: str) -> None:
        self.open[owner] -= 1
        if self.open[owner] <= 0:
            del self.open[owner]


def require_bus(res: Resources) -> None:
    """A stream is answered 200 before its first read from NATS; refuse it with a 503 while NATS is
    unreachable, instead of a response cut off after its headers."""
    if not res.bus.nc.is_connected:
        raise NotReady("NATS cannot be reached right now; try again later")


def holding(slot: Slot, items: AsyncIterator[T]) -> AsyncIterator[T]:
    """``items``, releasing ``slot`` when the stream ends, fails, is closed, or is never started."""

    async def stream() -> AsyncIterator[T]:
        try:
            async for item in items:
                yield item
        finally:
            slot.release()

    gen = stream()
    weakref.finalize(gen, slot.release)  # a response dropped before its first item
    return gen
