"""The audit log: one row per state-changing request, recorded by the gateway through the bus, written by
the scheduler, listed by admins."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Table, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

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


def _row(r: v1.AuditRecord) -> dict[str, object]:
    return {
        "at": r.at,
        "actor": r.actor[:128] if r.actor else None,
        "action": r.action[:64],
        "method": r.method[:8],
        "path": r.path[:1024],
        "status": r.status,
        "target": r.target[:255] if r.target else None,
        "address": r.address[:64] if r.address else None,
        "token_id": r.token_id[:32] if r.token_id else None,
        "request": r.request[:64] if r.request else None,
    }


#: the table, not the mapped class: a statement on the class takes the ORM's bulk path through a session
AUDIT: Table = AuditRow.__table__  # type: ignore[assignment]
_INSERT = insert(AUDIT)


#: the ``ON CONFLICT`` inserts, built once per (dialect, carried): a statement object keeps its cache key
_KEYED: dict[tuple[str, bool], Any] = {}


def _keyed(conn: AsyncConnection | AsyncSession, carried: bool) -> Any:
    """The INSERT of a record naming its request, in the connection's dialect (SQLite and PostgreSQL
    know ``ON CONFLICT``): a ``carried`` one only where the row is missing, else it sets status and time."""
    dialect = (conn.dialect if isinstance(conn, AsyncConnection) else conn.get_bind().dialect).name
    stmt = _KEYED.get((dialect, carried))
    if stmt is None:
        stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(AUDIT)
        if carried:
            stmt = stmt.on_conflict_do_nothing(index_elements=["request"])
        else:
            excluded = stmt.excluded
            stmt = stmt.on_conflict_do_update(
                index_elements=["request"], set_={"status": excluded.status, "at": excluded.at}
            )
        _KEYED[(dialect, carried)] = stmt
    return stmt


async def insert_records(
    session: AsyncConnection | AsyncSession, records: list[v1.AuditRecord], *, carried: bool = False
) -> None:
    """Add ``records`` in one bulk statement per kind (the scheduler's batch); the caller commits.

    A record naming its ``request`` has one row: a record a submit command ``carried`` is inserted only
    where its row is not there yet (a redelivered command, or the gateway's record came first); one the
    gateway sent inserts the row or sets its status and time (what the client was really answered).
    """
    plain = [_row(r) for r in records if r.request is None]
    keyed = {r.request: _row(r) for r in records if r.request is not None}  # the last one per request
    if plain:
        await session.execute(_INSERT, plain)
    if keyed:
        await session.execute(_keyed(session, carried), list(keyed.values()))


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
