"""The audit log: one row per state-changing request, written by the gateway, listed by admins."""

from __future__ import annotations

from datetime import datetime

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

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


async def record(
    session: AsyncSession,
    *,
    actor: str | None,
    action: str,
    method: str,
    path: str,
    status: int,
    target: str | None = None,
    address: str | None = None,
    token_id: str | None = None,
) -> None:
    session.add(
        AuditRow(
            at=now(),
            actor=actor,
            action=action[:64],
            method=method[:8],
            path=path[:1024],
            status=status,
            target=target[:255] if target else None,
            address=address[:64] if address else None,
            token_id=token_id,
        )
    )
    await session.flush()


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
