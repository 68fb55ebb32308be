"""Per-owner quotas, admitted atomically so that concurrent submits (from any number of gateway
replicas) never over-admit.

One admission is one short write transaction that first serialises with every other admission of the
same owner: ``pg_advisory_xact_lock`` on PostgreSQL, ``BEGIN IMMEDIATE`` (the one database write lock)
on SQLite. Inside it we count what the owner has — active jobs the scheduler stored, plus jobs we
admitted that it has not stored yet (``admissions`` rows without a ``jobs`` row) — in one statement, so a
job the scheduler stores meanwhile is counted exactly once; then we add our own admission row.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import delete, exists, func, insert, literal, select, text, union_all
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from jobwire.contracts import v1

from .engine import SQLITE_BEGIN
from .models import AdmissionRow, JobCountRow, JobRow, QuotaRow, now

DEFAULT_OWNER = "*"
RATE_WINDOW = timedelta(minutes=1)
#: An admitted job the scheduler has not stored after this long stops counting (its command is lost).
PENDING_TTL = timedelta(hours=1)
#: Advisory lock key space for admissions (the second key is the owner's hash).
_LOCK_SPACE = 0x6A77
_ACTIVE = sorted(s.value for s in v1.ACTIVE)


class Quota(msgspec.Struct, kw_only=True):
    """Limits for one owner (``*`` = everyone without their own row). None means no limit."""

    owner: str = DEFAULT_OWNER
    max_active: int | None = None
    max_per_minute: int | None = None
    max_gpus: int | None = None
    #: fair-share weight against other owners (the scheduler's, not a limit); None: the default, 1
    share: float | None = None

    def unlimited(self) -> bool:
        return self.max_active is None and self.max_per_minute is None and self.max_gpus is None


@dataclass
class QuotaExceeded(Exception):
    """Admitting the job would go over ``limit``; try again after ``retry_after`` seconds."""

    limit: str
    detail: str
    retry_after: int

    def __str__(self) -> str:
        return self.detail


@dataclass
class Usage:
    active: int
    gpus: int
    recent: int
    oldest_recent: datetime | None


def _quota(row: Any) -> Quota:
    return Quota(
        owner=row.owner,
        max_active=row.max_active,
        max_per_minute=row.max_per_minute,
        max_gpus=row.max_gpus,
        share=row.share,
    )


def _sets_limits(row: Any) -> bool:
    """Whether a row takes the place of the ``*`` defaults for its owner: the defaults' own row does,
    and an owner's row does unless it sets only a share (a fair-share weight, not a limit: giving
    alice share 2 must not lift the default limits off her). A row that sets nothing at all still
    exempts its owner, as it did before shares."""
    if row.owner == DEFAULT_OWNER or row.share is None:
        return True
    return any(v is not None for v in (row.max_active, row.max_per_minute, row.max_gpus))


async def _limits(conn: AsyncConnection, owner: str) -> Quota:
    """The owner's own row when it has one (it replaces the defaults whole, unless it sets only a
    share), else the ``*`` row."""
    rows = (await conn.execute(select(QuotaRow).where(QuotaRow.owner.in_([owner, DEFAULT_OWNER])))).all()
    return limits_among([_quota(r) for r in rows], owner)


def limits_among(rows: Collection[Quota], owner: str) -> Quota:
    """What :func:`limits_of` answers, picked from ``rows`` already read (the gateway keeps the whole,
    tiny table in memory): the owner's own row when it sets limits, else the ``*`` row, else none."""
    by_owner = {q.owner: q for q in rows if q.owner in (owner, DEFAULT_OWNER) and _sets_limits(q)}
    return by_owner.get(owner) or by_owner.get(DEFAULT_OWNER) or Quota()


async def _usage(conn: AsyncConnection, owner: str, at: datetime) -> Usage:
    stored = select(literal(0).label("gpus"), JobRow.spec.label("spec")).where(
        JobRow.owner == owner, JobRow.state.in_(_ACTIVE)
    )
    pending = select(AdmissionRow.gpus.label("gpus"), literal(None).label("spec")).where(
        AdmissionRow.owner == owner,
        AdmissionRow.at > at - PENDING_TTL,
        ~exists().where(JobRow.id == AdmissionRow.job_id),
    )
    active, gpus = 0, 0
    row: Any
    for row in (await conn.execute(union_all(stored, pending))).all():
        active += 1
        gpus += row.gpus if row.spec is None else v1.decode(row.spec, v1.JobSpec).resources.gpus_total
    recent_q = select(func.count(), func.min(AdmissionRow.at)).where(
        AdmissionRow.owner == owner, AdmissionRow.at > at - RATE_WINDOW
    )
    recent, oldest = (await conn.execute(recent_q)).one()
    if isinstance(oldest, str):  # SQLite returns min() of a datetime column as text
        oldest = datetime.fromisoformat(oldest)
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=at.tzinfo)
    return Usage(active=active, gpus=gpus, recent=int(recent), oldest_recent=oldest)


def _check(q: Quota, use: Usage, gpus: int, at: datetime, count: int = 1) -> None:
    """Refuse ``count`` more jobs asking ``gpus`` GPUs in all if any limit would be passed."""
    if q.max_per_minute is not None and use.recent + count > q.max_per_minute:
        wait = RATE_WINDOW - (at - use.oldest_recent) if use.oldest_recent else RATE_WINDOW
        raise QuotaExceeded(
            "max_per_minute",
            f"at most {q.max_per_minute} submissions per minute",
            max(1, math.ceil(wait.total_seconds())),
        )
    if q.max_active is not None and use.active + count > q.max_active:
        raise QuotaExceeded("max_active", f"at most {q.max_active} active jobs (you have {use.active})", 10)
    if q.max_gpus is not None and gpus and use.gpus + gpus > q.max_gpus:
        raise QuotaExceeded(
            "max_gpus",
            f"at most {q.max_gpus} GPUs in use (you have {use.gpus}, this job asks {gpus})",
            10,
        )


async def _serialise(conn: AsyncConnection, owner: str) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(:space, hashtext(:owner))"),
            {"space": _LOCK_SPACE, "owner": owner},
        )


async def admit(engine: AsyncEngine, owner: str, job_id: str, *, gpus: int = 0) -> None:
    """Reserve a place for ``job_id`` or raise :class:`QuotaExceeded`; nothing is kept on refusal.

    An owner without limits is let through after one read, without taking SQLite's write lock (which
    would queue every submit behind the scheduler's writes); the limits are read again under the lock.
    """
    async with engine.connect() as conn:
        if (await _limits(conn, owner)).unlimited():
            return
    async with engine.connect() as conn:
        conn = await conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
        async with conn.begin():
            q = await _limits(conn, owner)
            if q.unlimited():
                return
            await _serialise(conn, owner)
            at = now()
            _check(q, await _usage(conn, owner, at), gpus, at)
            await conn.execute(insert(AdmissionRow).values(job_id=job_id, owner=owner, gpus=gpus, at=at))
            # Done with: rows past the rate window whose job the scheduler stored, and stale ones.
            await conn.execute(
                delete(AdmissionRow).where(
                    AdmissionRow.owner == owner,
                    AdmissionRow.at < at - RATE_WINDOW,
                    exists().where(JobRow.id == AdmissionRow.job_id),
                )
            )
            await conn.execute(delete(AdmissionRow).where(AdmissionRow.at < at - PENDING_TTL))


@dataclass
class Pending:
    """A job a gateway admitted and published that the scheduler may not have stored yet."""

    job_id: str
    gpus: int
    at: datetime


async def limits_of(engine: AsyncEngine, owner: str) -> Quota:
    async with engine.connect() as conn:
        return await _limits(conn, owner)


async def check_reading(
    engine: AsyncEngine, q: Quota, owner: str, gpus: int, pending: list[Pending], count: int = 1
) -> set[str]:
    """Raise :class:`QuotaExceeded` if admitting one more job of ``gpus`` would go over ``q``; read-only.

    Counts the owner's stored active jobs, the jobs stored in the last minute (the rate), and ``pending``
    (what the caller admitted that is not stored yet). Returns the pending ids found stored (the caller
    forgets them: they are counted as stored from now on).
    """
    at = now()
    async with engine.connect() as conn:
        stored_q = select(JobRow.spec).where(JobRow.owner == owner, JobRow.state.in_(_ACTIVE))
        specs = (await conn.execute(stored_q)).scalars().all()
        recent_q = select(func.count(), func.min(JobRow.created_at)).where(
            JobRow.owner == owner, JobRow.created_at > at - RATE_WINDOW
        )
        recent, oldest_stored = (await conn.execute(recent_q)).one()
        ids = [p.job_id for p in pending]
        done: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            done |= set((await conn.execute(select(JobRow.id).where(JobRow.id.in_(chunk)))).scalars())
    waiting = [p for p in pending if p.job_id not in done and p.at > at - PENDING_TTL]
    gpus_used = sum(v1.decode(spec, v1.JobSpec).resources.gpus_total for spec in specs) if q.max_gpus else 0
    oldest = _aware(oldest_stored, at)
    recent_pending = [p.at for p in waiting if p.at > at - RATE_WINDOW]
    if recent_pending:
        oldest = min([oldest, *recent_pending]) if oldest else min(recent_pending)
    use = Usage(
        active=len(specs) + len(waiting),
        gpus=gpus_used + sum(p.gpus for p in waiting),
        recent=int(recent) + len(recent_pending),
        oldest_recent=oldest,
    )
    _check(q, use, gpus, at, count)
    return done


def _aware(value: Any, at: datetime) -> datetime | None:
    if isinstance(value, str):  # SQLite returns min() of a datetime column as text
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=at.tzinfo)
    return value if isinstance(value, datetime) or value is None else None


async def release(engine: AsyncEngine, job_id: str) -> None:
    """Forget an admission: its submit failed before publishing, or its job was deleted."""
    async with engine.begin() as conn:
        await conn.execute(delete(AdmissionRow).where(AdmissionRow.job_id == job_id))


async def get_quotas(engine: AsyncEngine) -> list[Quota]:
    async with engine.connect() as conn:
        return [_quota(r) for r in (await conn.execute(select(QuotaRow).order_by(QuotaRow.owner))).all()]


async def set_quota(engine: AsyncEngine, quota: Quota) -> Quota:
    """Create or replace the row for ``quota.owner``."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
        async with conn.begin():
            await conn.execute(delete(QuotaRow).where(QuotaRow.owner == quota.owner))
            await conn.execute(
                insert(QuotaRow).values(
                    owner=quota.owner,
                    max_active=quota.max_active,
                    max_per_minute=quota.max_per_minute,
                    max_gpus=quota.max_gpus,
                    share=quota.share,
                )
            )
    return quota


async def delete_quota(engine: AsyncEngine, owner: str) -> bool:
    async with engine.begin() as conn:
        result = await conn.execute(delete(QuotaRow).where(QuotaRow.owner == owner))
    return bool(getattr(result, "rowcount", 0))


async def shares(session: AsyncSession) -> dict[str, float]:
    """The fair-share weights set by admins (owner, or ``*`` for the default), in one query: the
    scheduler reads them with a batch, never per job."""
    rows = await session.execute(select(QuotaRow.owner, QuotaRow.share).where(QuotaRow.share.is_not(None)))
    return {owner: float(share) for owner, share in rows if share is not None}


async def active_headroom(session: AsyncSession, owners: Collection[str]) -> dict[str, int | None]:
    """How many more active jobs each of ``owners`` may have under ``max_active`` (None: no limit), from
    the ``job_counts`` rollups (one row per owner and state) in the caller's transaction, so the jobs it
    made a moment ago count. The scheduler makes an array's tasks only within this room: an array is
    admitted as one submit, and its tasks must not take an owner past the quota a submit is held to."""
    if not owners:
        return {}
    wanted = sorted(set(owners))
    rows = (await session.execute(select(QuotaRow).where(QuotaRow.owner.in_([*wanted, DEFAULT_OWNER])))).all()
    limits = {r[0].owner: r[0].max_active for r in rows if _sets_limits(r[0])}
    default = limits.get(DEFAULT_OWNER)
    caps = {o: limits.get(o, default) for o in wanted}  # an owner's own row replaces the defaults
    limited = [o for o, cap in caps.items() if cap is not None]
    active: dict[str, int] = dict.fromkeys(limited, 0)
    if limited:
        counted = await session.execute(
            select(JobCountRow.owner, func.coalesce(func.sum(JobCountRow.n), 0))
            .where(JobCountRow.owner.in_(limited), JobCountRow.node == "*", JobCountRow.state.in_(_ACTIVE))
            .group_by(JobCountRow.owner)
        )
        active.update({owner: int(n) for owner, n in counted})
    return {o: None if cap is None else max(0, cap - active[o]) for o, cap in caps.items()}


async def gpu_headroom(session: AsyncSession, owners: Collection[str]) -> dict[str, int | None]:
    """How many more GPUs each of ``owners`` may hold under ``max_gpus`` (None: no limit), counting
    their active jobs' specs as an admission does, in the caller's transaction. Asked only for the
    owners of arrays whose tasks ask for GPUs."""
    if not owners:
        return {}
    wanted = sorted(set(owners))
    rows = (await session.execute(select(QuotaRow).where(QuotaRow.owner.in_([*wanted, DEFAULT_OWNER])))).all()
    limits = {r[0].owner: r[0].max_gpus for r in rows if _sets_limits(r[0])}
    caps = {o: limits.get(o, limits.get(DEFAULT_OWNER)) for o in wanted}
    used: dict[str, int] = dict.fromkeys(wanted, 0)
    limited = [o for o, cap in caps.items() if cap is not None]
    if limited:
        specs = await session.execute(
            select(JobRow.owner, JobRow.spec).where(JobRow.owner.in_(limited), JobRow.state.in_(_ACTIVE))
        )
        for owner, spec in specs:
            used[owner] += v1.decode(spec, v1.JobSpec).resources.gpus_total
    return {o: None if cap is None else max(0, cap - used[o]) for o, cap in caps.items()}
