"""Job rows as plain records for the scheduler's hot path, read and written with bulk statements.

The scheduler touches hundreds of jobs per batch. Through the ORM each one was an identity-mapped object
whose changes the unit of work diffed at flush (about 40% of the scheduler's CPU per job under load);
here a batch reads its jobs with one ``SELECT ... WHERE id IN (...)`` per 500, and writes them with one
executemany statement per kind: inserted jobs, each set of changed columns, transitions, labels,
outbox messages (ids returned in order) and deletes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Table, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from .models import JobLabelRow, JobRow, OutboxRow, TransitionRow

JOBS: Table = JobRow.__table__  # type: ignore[assignment]
TRANSITIONS: Table = TransitionRow.__table__  # type: ignore[assignment]
LABELS: Table = JobLabelRow.__table__  # type: ignore[assignment]
OUTBOX: Table = OutboxRow.__table__  # type: ignore[assignment]
#: the jobs table's columns, in table order
COLUMNS: tuple[str, ...] = tuple(c.name for c in JOBS.columns)
_NAMES = frozenset(COLUMNS)
#: how many ids one ``IN (...)`` carries (SQLite allows 32,766 bound parameters; this keeps plans small)
CHUNK = 500

# The hot path's statements, built once: a statement object memoizes its cache key, so executing it again
# finds its compiled form without walking the statement (a new ``select(...)`` per batch was walked anew).
_LOAD = select(JOBS).where(JOBS.c.id.in_(bindparam("ids", expanding=True)))
_INSERT = insert(JOBS)
#: the SET clause is made of the parameters' keys (the same for each executemany)
_UPDATE = update(JOBS).where(JOBS.c.id == bindparam("_id"))
_INSERT_TRANSITIONS = insert(TRANSITIONS)
_INSERT_LABELS = insert(LABELS)
_INSERT_OUTBOX = insert(OUTBOX).returning(OUTBOX.c.id, sort_by_parameter_order=True)
_DELETE = delete(JOBS).where(JOBS.c.id.in_(bindparam("ids", expanding=True)))
_DELETE_OUTBOX = delete(OUTBOX).where(OUTBOX.c.id.in_(bindparam("ids", expanding=True)))


class JobRec:
    """One ``jobs`` row; setting an attribute marks its column changed, for the batch's UPDATE."""

    __slots__ = (*COLUMNS, "_changed")

    id: str
    owner: str
    name: str | None
    state: str
    reason: str | None
    node: str | None
    backend: str | None
    attempt: int
    max_attempts: int
    priority: int
    expected_runtime: float | None
    timeout: float | None
    spec: bytes
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    dispatched_at: datetime | None
    exit_code: int | None
    usage: bytes | None
    artifacts: bytes | None
    ports: bytes | None
    details: bytes | None
    cancel_requested: bool
    delete_requested: bool
    array_id: str | None
    array_index: int | None
    not_before: datetime | None
    gang: bytes | None
    _changed: set[str]

    def __init__(self, **values: Any) -> None:
        unknown = values.keys() - _NAMES
        if unknown:
            raise TypeError(f"not a column of jobs: {sorted(unknown)}")
        get = values.get
        for put, name, default in _PUTS:  # the slots' own setters: no ``__setattr__`` per column
            put(self, get(name, default))
        _PUT_CHANGED(self, set())

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        self._changed.add(name)

    def __repr__(self) -> str:
        return f"JobRec(id={self.id!r}, state={self.state!r}, node={self.node!r}, attempt={self.attempt})"

    @classmethod
    def of(cls, row: Row[Any]) -> JobRec:
        """A record of a row read with ``select(JOBS)`` (nothing changed yet)."""
        rec = cls.__new__(cls)
        for (put, _, _), value in zip(_PUTS, row, strict=True):
            put(rec, value)
        _PUT_CHANGED(rec, set())
        return rec

    def values(self, names: Iterable[str] = COLUMNS) -> dict[str, Any]:
        return {name: getattr(self, name) for name in names}

    def changed(self) -> frozenset[str]:
        return frozenset(self._changed)

    def saved(self) -> None:
        """The record is what the database holds now."""
        self._changed.clear()


_DEFAULTS: dict[str, Any] = {
    "attempt": 0,
    "max_attempts": 1,
    "priority": 0,
    "cancel_requested": False,
    "delete_requested": False,
}
#: per column in table order: its slot's setter, its name and its default (a record is made per new job
#: and per row read: 28 ``object.__setattr__`` calls and default look-ups were ~15 us a record)
_PUTS: tuple[tuple[Any, str, Any], ...] = tuple(
    (getattr(JobRec, name).__set__, name, _DEFAULTS.get(name)) for name in COLUMNS
)
_PUT_CHANGED = JobRec._changed.__set__  # type: ignore[attr-defined]


@dataclass
class OutboxMsg:
    """A message committed with the batch and published after it; ``id`` is set when it is written."""

    subject: str
    payload: bytes
    msg_id: str | None
    headers: bytes | None
    id: int = 0


async def load(conn: AsyncConnection | AsyncSession, ids: Iterable[str]) -> list[JobRec]:
    """The jobs with these ids (those that exist), one query per ``CHUNK`` ids."""
    wanted = list(ids)
    out: list[JobRec] = []
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        result = await conn.execute(_LOAD, {"ids": chunk})
        out.extend(JobRec.of(row) for row in result)
    return out


async def pages_in_states(
    conn: AsyncConnection | AsyncSession, states: Sequence[str], size: int = 2000
) -> AsyncIterator[list[JobRec]]:
    """The jobs in ``states``, ``size`` at a time in id order per state (the ``(state, id)`` index):
    the scheduler's view on start is built page by page, never holding every active row at once."""
    for state in states:
        last = ""
        while True:
            query = (
                select(JOBS).where(JOBS.c.state == state, JOBS.c.id > last).order_by(JOBS.c.id).limit(size)
            )
            page = [JobRec.of(row) for row in await conn.execute(query)]
            if page:
                yield page
            if len(page) < size:
                break
            last = page[-1].id


@dataclass
class Writes:
    """What one batch writes, applied in an order the foreign keys accept."""

    new: list[JobRec]
    touched: list[JobRec]
    transitions: list[dict[str, Any]]
    labels: list[dict[str, Any]]
    outbox: list[OutboxMsg]
    deleted: list[str]


async def write(conn: AsyncConnection | AsyncSession, w: Writes) -> None:
    """One executemany statement per kind of write; outbox ids are set from the insert's RETURNING."""
    if w.new:
        await conn.execute(_INSERT, [rec.values() for rec in w.new])
    groups: dict[frozenset[str], list[JobRec]] = {}
    new_ids = {rec.id for rec in w.new}
    for rec in w.touched:
        names = rec.changed() - {"id"}
        if names and rec.id not in new_ids:
            groups.setdefault(names, []).append(rec)
    for names, recs in groups.items():
        params = [{"_id": rec.id, **rec.values(names)} for rec in recs]
        await conn.execute(_UPDATE, params)
    if w.transitions:
        await conn.execute(_INSERT_TRANSITIONS, w.transitions)
    if w.labels:
        await conn.execute(_INSERT_LABELS, w.labels)
    if w.outbox:
        params = [
            {"subject": m.subject, "payload": m.payload, "msg_id": m.msg_id, "headers": m.headers}
            for m in w.outbox
        ]
        result = await conn.execute(_INSERT_OUTBOX, params)
        for msg, (row_id,) in zip(w.outbox, result.all(), strict=True):
            msg.id = row_id
    for start in range(0, len(w.deleted), CHUNK):
        await conn.execute(_DELETE, {"ids": w.deleted[start : start + CHUNK]})
    for rec in (*w.new, *w.touched):
        rec.saved()


async def delete_outbox(conn: AsyncConnection | AsyncSession, ids: Sequence[int]) -> None:
    """Forget outbox rows that were published, one statement per ``CHUNK`` ids."""
    for start in range(0, len(ids), CHUNK):
        await conn.execute(_DELETE_OUTBOX, {"ids": list(ids[start : start + CHUNK])})
