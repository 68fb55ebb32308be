"""Leader lease in NATS KV: one scheduler replica is active, the others stand by.

The lease is the key ``scheduler`` in bucket ``jobwire_leader``, whose entries expire after the
bucket's TTL (the lease period). The holder writes its id with compare-and-set on the revision and
refreshes well within the period; a standby takes the key with ``create`` once it is gone (expired
or released). A holder that cannot refresh in time gives up before anyone else can take over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from nats.js.errors import KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

KEY = "scheduler"


class Lease:
    """One holder's view of the lease. ``ttl`` must equal the bucket's TTL (``declare_streams``)."""

    def __init__(self, kv: KeyValue, holder: str, *, ttl: float, key: str = KEY) -> None:
        self.kv = kv
        self.holder = holder
        self.ttl = ttl
        self.key = key
        self.revision: int | None = None
        self._valid_until = 0.0
        #: when our last accepted write was sent: the server keeps it for a period from then, at least
        self._written_at = 0.0

    @property
    def held(self) -> bool:
        """True while our last successful write is recent enough that no one else can hold the key."""
        return self.revision is not None and time.monotonic() < self._valid_until

    def _took(self, revision: int, started: float) -> bool:
        self.revision = revision
        self._written_at = started
        # Counted from before the write: the server's expiry clock started no earlier. A margin of a
        # third of the period leaves room for a paused process to notice before a standby may act.
        self._valid_until = started + self.ttl * 2 / 3
        return True

    async def try_acquire(self) -> bool:
        """Take the lease when free, or when the entry is ours already (a restart of the same holder)."""
        started = time.monotonic()
        try:
            return self._took(await self.kv.create(self.key, self.holder.encode()), started)
        except KeyWrongLastSequenceError:
            pass
        try:
            entry = await self.kv.get(self.key)
        except NotFoundError:  # expired between the two calls: next poll takes it
            return False
        if entry.value != self.holder.encode() or entry.revision is None:
            return False
        return await self.refresh(revision=entry.revision)

    async def refresh(self, revision: int | None = None) -> bool:
        """Rewrite the key at our revision; any other write since means we lost it."""
        last = revision if revision is not None else self.revision
        if last is None:
            return False
        started = time.monotonic()
        try:
            return self._took(await self.kv.update(self.key, self.holder.encode(), last=last), started)
        except (KeyWrongLastSequenceError, NotFoundError):
            self.revision = None
            return False

    def _renewal_at(self) -> float:
        """When a third of the period has passed since the last write: the next refresh is due."""
        return self._valid_until - self.ttl / 3

    def renewal_due(self) -> bool:
        """``keep`` would refresh now."""
        return time.monotonic() >= self._renewal_at()

    async def release(self) -> None:
        """Hand over at once (graceful stop) instead of making the standby wait for the expiry."""
        if self.revision is not None:
            with contextlib.suppress(Exception):
                await self.kv.delete(self.key, last=self.revision)
        self.revision = None

    async def keep(self) -> None:
        """Refresh once a third of the period has passed since the last write (at once when the keeper
        starts late, after a long rebuild); return as soon as the lease is lost or runs out.

        A refresh answered after our margin (the process or the server stalled for more than two thirds
        of a period) still proves that no one else wrote since our last write: while the server's period
        from it lasts the lease is ours, so it is refreshed again at once rather than given up and taken
        back with a rebuild of the whole view."""
        while True:
            await asyncio.sleep(max(0.0, self._renewal_at() - time.monotonic()))
            if not await self._renew(until=self._valid_until):
                return
            if self.held:
                continue
            late = time.monotonic() - self._written_at
            if late >= self.ttl:
                log.warning("leader lease: lost, a refresh was answered after %.1f s, past the period", late)
                self.revision = None
                return
            log.warning("leader lease: a refresh was answered after %.1f s; refreshing again", late)
            if not await self._renew(until=self._written_at + self.ttl):
                return
            if not self.held:
                log.warning("leader lease: lost, the second refresh was answered late too")
                self.revision = None
                return

    async def _renew(self, until: float) -> bool:
        """One refresh that must be answered by ``until`` (0.1 s at least); False when it was not, or
        was refused (another write since ours, or our entry expired)."""
        try:
            ok = await asyncio.wait_for(self.refresh(), timeout=max(0.1, until - time.monotonic()))
        except Exception as e:  # TimeoutError included: the bus did not answer in time
            log.warning("leader lease: refresh failed (%s)", type(e).__name__)
            ok = False
        if not ok:
            log.warning("leader lease: lost (refresh not answered in time, or refused)")
            self.revision = None
        return ok

    async def wait_acquire(self, poll: float | None = None) -> None:
        """Stand by until the lease is ours (polls a fraction of the period)."""
        interval = poll if poll is not None else max(0.2, self.ttl / 10)
        while True:
            if await self.try_acquire():
                return
            await asyncio.sleep(interval)
