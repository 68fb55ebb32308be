"""The audit log: one row per state-changing request, recorded by the gateway through the bus, written by
the scheduler, listed by admins."""

from __future__ import annotations

from datetime import datetime

import msgspec
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from jobwire.contracts import v1

from .models import AuditRow, now


class AuditEntry(msgspec.Struct, kw_only=True):
    id: int
    at: datetime
    actor: str | None
    action: str
    method: str
    path: str
    status: int
    target: str | None = None
    address: str | None = None
    token_id: str | None = None


class NewEntry(msgspec.Struct, kw_only=True):
    """One request to record; ``at`` is when it was answered (rows may be written a moment later)."""

    actor: str | None
    action: str
    method: str
    path: str
    status: int
    target: str | None = None
    address: str | None = None
    token_id: str | None = None
    at: datetime | None = None


async def record(session: AsyncSession, *entries: NewEntry) -> None:
    """Add ``entries`` (in one flush); the caller's transaction commits them."""
    session.add_all(
        AuditRow(
            at=e.at or now(),
            actor=e.actor,
            action=e.action[:64],
            method=e.method[:8],
            path=e.path[:1024],
            status=e.status,
            target=e.target[:255] if e.target else None,
            address=e.address[:64] if e.address else None,
            token_id=e.token_id,
        )
        for e in entries
    )
    await session.flush()


async def insert_records(session: AsyncSession, records: list[v1.AuditRecord]) -> None:
    """Add ``records`` in one bulk statement (the scheduler's batch); the caller's transaction commits."""
    if not records:
        return
    await session.execute(
        insert(AuditRow),
        [
            {
                "at": r.at,
                "actor": r.actor[:128] if r.actor else None,
                "action": r.action[:64],
                "method": r.method[:8],
                "path": r.path[:1024],
                "status": r.status,
                "target": r.target[:255] if r.target else None,
                "address": r.address[:64] if r.address else None,
                "token_id": r.token_id[:32] if r.token_id else None,
            }
            for r in records
        ],
    )


async def list_entries(
    session: AsyncSession,
    *,
    actor: str | None = None,
    action: str | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Newest first; ``before`` is the smallest id of the previous page."""
    query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
    if actor is not None:
        query = query.where(AuditRow.actor == actor)
    if action is not None:
        query = query.where(AuditRow.action == action)
    if before is not None:
        query = query.where(AuditRow.id < before)
    rows = (await session.execute(query)).scalars()
    return [
        AuditEntry(
            id=r.id,
            at=r.at,
            actor=r.actor,
            action=r.action,
            method=r.method,
            path=r.path,
            status=r.status,
            target=r.target,
            address=r.address,
            token_id=r.token_id,
        )
        for r in rows
    ]
