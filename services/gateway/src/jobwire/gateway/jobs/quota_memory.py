"""Every owner's quota limits, kept in memory so that a submit reads no quota row.

The ``quotas`` table is tiny (one row per owner with limits, plus ``*``), so the gateway holds all of
it: read whole at start, and read whole again (one query) every ``refresh`` seconds, so a quota changed
through any gateway replica applies on every replica within about that long. The replica that serves a
``PUT``/``DELETE /v1/quotas/...`` updates its own copy at once. Until the first read has succeeded
(the database was away at start) limits are read per submit, as before, so a quota is never skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sqlalchemy.ext.asyncio import AsyncEngine

from jobwire.store import quotas

log = logging.getLogger(__name__)


class QuotaMemory:
    def __init__(self, engine: AsyncEngine, *, refresh: float = 1.0) -> None:
        self._engine = engine
        self._refresh = refresh
        #: owner (``*`` for the defaults) -> its row; None until the table was read once
        self._rows: dict[str, quotas.Quota] | None = None
        #: bumped by every local change, so a re-read that began before one does not undo it
        self._changes = 0
        self._failing = False
        self.loaded_at = 0.0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.reload()
        self._task = asyncio.create_task(self._keep_fresh(), name="quota-memory")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def reload(self) -> None:
        """Replace the copy with the whole table (one query); on failure keep what we have."""
        changes = self._changes
        try:
            rows = await quotas.get_quotas(self._engine)
        except Exception as e:  # the database is away: keep the copy, say so once until it is back
            if not self._failing:
                log.warning("could not re-read the quotas table (keeping the last copy): %s", e)
            self._failing = True
            return
        self._failing = False
        if changes != self._changes:
            return  # a local change landed while we read: the next re-read sees it stored
        self._rows = {q.owner: q for q in rows}
        self.loaded_at = time.monotonic()

    async def limits_of(self, owner: str) -> quotas.Quota:
        """``owner``'s limits (its own row, else ``*``'s, else none), from memory once loaded."""
        rows = self._rows
        if rows is None:
            return await quotas.limits_of(self._engine, owner)
        return quotas.limits_among(
            [q for q in (rows.get(owner), rows.get(quotas.DEFAULT_OWNER)) if q is not None], owner
        )

    def stored(self, quota: quotas.Quota) -> None:
        """This replica stored ``quota``: it applies here from the next submit."""
        self._changes += 1
        if self._rows is not None:
            self._rows[quota.owner] = quota

    def deleted(self, owner: str) -> None:
        """This replica deleted ``owner``'s row."""
        self._changes += 1
        if self._rows is not None:
            self._rows.pop(owner, None)

    async def _keep_fresh(self) -> None:
        while True:
            await asyncio.sleep(self._refresh)
            await self.reload()
