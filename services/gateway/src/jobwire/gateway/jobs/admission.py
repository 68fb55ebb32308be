"""Quota admission without a write: the gateway reads what the owner has stored and adds what it admitted
itself that the scheduler has not stored yet.

Admissions of one owner are serialised in this process (one lock per owner), so one replica never
over-admits; across replicas a quota can be exceeded by what the others have in flight at that moment
(published, not yet stored: one scheduler batch). The scheduler stores the job, which is what counts
from then on; nothing is written here. The limits come from :class:`QuotaMemory`, so an owner without
any costs no query; only an owner with limits has its jobs counted.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from jobwire.store import quotas
from jobwire.store.models import now

from .quota_memory import QuotaMemory


class Admissions:
    def __init__(self, engine: AsyncEngine, limits: QuotaMemory) -> None:
        self.engine = engine
        #: every owner's limits, in memory: an owner without limits costs no query
        self.limits = limits
        #: owner -> job id -> what this replica admitted and published, not seen stored yet
        self.pending: dict[str, dict[str, quotas.Pending]] = {}
        self.locks: dict[str, asyncio.Lock] = {}

    async def admit(self, owner: str, job_id: str, *, gpus: int = 0) -> None:
        """Count ``job_id`` in ``owner``'s quotas or raise :class:`quotas.QuotaExceeded`."""
        await self.admit_all(owner, [(job_id, gpus)])

    async def admit_all(self, owner: str, jobs: list[tuple[str, int]]) -> None:
        """Count all of ``jobs`` (id, GPUs) or none of them (a batch is admitted whole or refused)."""
        limits = await self.limits.limits_of(owner)
        if limits.unlimited():
            return
        async with self.locks.setdefault(owner, asyncio.Lock()):
            at = now()
            mine = {k: p for k, p in self.pending.get(owner, {}).items() if p.at > at - quotas.PENDING_TTL}
            gpus = sum(g for _, g in jobs)
            stored = await quotas.check_reading(
                self.engine, limits, owner, gpus, list(mine.values()), count=len(jobs)
            )
            for done in stored:
                mine.pop(done, None)
            for job_id, job_gpus in jobs:
                mine[job_id] = quotas.Pending(job_id=job_id, gpus=job_gpus, at=at)
            self.pending[owner] = mine

    def release(self, owner: str, job_id: str) -> None:
        """Forget an admission whose submit failed before it was published."""
        self.pending.get(owner, {}).pop(job_id, None)
