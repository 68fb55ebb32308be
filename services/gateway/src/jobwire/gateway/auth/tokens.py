"""Every API token in memory, kept current from the token bucket: a request checks its bearer token with
one hash lookup and writes nothing.

Loaded from the database at start (and again every ``token_reload_interval``, for tokens the
``jobwire.store`` command line changed directly), then updated by a watch on the token bucket, which the
scheduler writes after committing a create or revoke: a change reaches every replica within a second.
A secret not in memory is looked up once in the database (a read), so a token minted a moment ago works.
Last uses are gathered here and sent to the scheduler in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import msgspec
from nats.js.kv import KeyValue
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime.bus import Bus
from jobwire.store import tokens
from jobwire.store.models import now

log = logging.getLogger(__name__)
#: how often gathered last uses are sent (each token's at most once per ``touch_every``)
TOUCH_SEND_EVERY = 1.0

Waiter = tuple[Callable[[v1.TokenRecord], bool], "asyncio.Future[v1.TokenRecord]"]


class TokenMemory:
    def __init__(
        self,
        bus: Bus,
        sessions: async_sessionmaker[AsyncSession],
        *,
        touch_every: float,
        reload_every: float,
    ) -> None:
        self.bus = bus
        self.sessions = sessions
        self.touch_every = timedelta(seconds=touch_every)
        self.reload_every = reload_every
        self.by_hash: dict[str, v1.TokenRecord] = {}
        self.by_id: dict[str, v1.TokenRecord] = {}
        #: uses not sent yet, and when each token's use was last sent
        self.uses: dict[str, datetime] = {}
        self.sent: dict[str, datetime] = {}
        self.waiters: dict[str, list[Waiter]] = {}
        self.watcher: KeyValue.KeyWatcher | None = None
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Watch first, then load: a change committed in between is seen by one or the other."""
        bucket = await self.bus.js.key_value(sj.TOKEN_BUCKET)
        self.watcher = await bucket.watchall()
        self.tasks.append(asyncio.create_task(self._watch(self.watcher), name="token watch"))
        try:
            await self.reload()
        except Exception as e:  # the database may come later (readiness says so); misses read it then
            log.warning("could not load tokens at start (%s); reloading every %s s", e, self.reload_every)
        self.tasks.append(asyncio.create_task(self._reload_loop(), name="token reload"))
        self.tasks.append(asyncio.create_task(self._touch_loop(), name="token uses"))

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        if self.watcher is not None:
            with contextlib.suppress(Exception):
                await self.watcher.stop()  # type: ignore[no-untyped-call]
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self._send_uses()  # the last uses are not lost on a clean stop

    # --- what requests ask ---------------------------------------------------------------------
    async def find(self, secret: str) -> v1.TokenRecord | None:
        """The token with this secret (revoked and expired too), from memory or, once, the database."""
        if not tokens.looks_like_token(secret):
            return None
        digest = tokens.hash_secret(secret)
        record = self.by_hash.get(digest)
        if record is None:
            async with self.sessions() as session:
                record = await tokens.find_record(session, secret_hash=digest)
            if record is not None:
                self.put(record)
        return record

    def get(self, token_id: str) -> v1.TokenRecord | None:
        return self.by_id.get(token_id)

    def used(self, token_id: str) -> None:
        self.uses[token_id] = now()

    async def wait_for(
        self, token_id: str, done: Callable[[v1.TokenRecord], bool], timeout: float
    ) -> v1.TokenRecord | None:
        """The token's record once ``done(record)`` holds (the scheduler committed), or None on timeout."""
        current = self.by_id.get(token_id)
        if current is not None and done(current):
            return current
        future: asyncio.Future[v1.TokenRecord] = asyncio.get_running_loop().create_future()
        entry: Waiter = (done, future)
        self.waiters.setdefault(token_id, []).append(entry)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None
        finally:
            waiting = self.waiters.get(token_id, [])
            if entry in waiting:
                waiting.remove(entry)
            if not waiting:
                self.waiters.pop(token_id, None)

    # --- keeping current -----------------------------------------------------------------------
    def put(self, record: v1.TokenRecord) -> None:
        """Take a record from any source; a revocation is never undone by an older copy."""
        old = self.by_id.get(record.id)
        if old is not None and old.revoked_at is not None and record.revoked_at is None:
            record = msgspec.structs.replace(record, revoked_at=old.revoked_at)
        if old is not None and old.secret_hash != record.secret_hash:
            self.by_hash.pop(old.secret_hash, None)
        self.by_id[record.id] = record
        self.by_hash[record.secret_hash] = record
        for done, future in list(self.waiters.get(record.id, [])):
            if not future.done() and done(record):
                future.set_result(record)

    async def reload(self) -> None:
        async with self.sessions() as session:
            records = await tokens.load_records(session)
        for record in records:
            self.put(record)

    async def _watch(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is None or not entry.value:
                continue  # the end-of-history marker, or a deleted key
            try:
                self.put(v1.decode(entry.value, v1.TokenRecord))
            except Exception as e:
                log.warning("ignored a malformed token record %s: %s", entry.key, e)

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(self.reload_every)
            try:
                await self.reload()
            except Exception as e:
                log.warning("could not reload tokens: %s", e)

    async def _touch_loop(self) -> None:
        while True:
            await asyncio.sleep(TOUCH_SEND_EVERY)
            try:
                await self._send_uses()
            except Exception as e:
                log.warning("could not send token uses (%s); they go with the next ones", e)

    async def _send_uses(self) -> None:
        at = now()
        due = {
            tid: used
            for tid, used in self.uses.items()
            if (last := self.sent.get(tid)) is None or at - last >= self.touch_every
        }
        if not due:
            return
        await self.bus.publish(sj.cmd_subject("token_touch"), v1.TouchTokens(uses=due))
        for tid in due:
            self.uses.pop(tid, None)
            self.sent[tid] = at
