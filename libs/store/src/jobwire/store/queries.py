"""The read side: jobs and nodes as contract types, in a fixed number of queries per call.

The gateway answers every GET from here. A page of jobs costs four queries whatever its size (jobs, then
their transitions, labels and queue positions for the whole page at once), so a list never degrades into
one query per job.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from jobwire.contracts import v1
from jobwire.contracts.v1 import feasibility

from .models import JobLabelRow, JobRow, NodeRow, TransitionRow

#: The largest page ``list_jobs`` serves; keeps the ``IN`` lists of the follow-up queries bounded.
MAX_PAGE_SIZE = 1000
_ID_PATTERN = re.compile(r"^[0-9A-Za-z-]{1,36}$")
_QUEUED = v1.JobState.QUEUED.value
_ON_NODE = sorted(s.value for s in v1.ON_NODE)


class InvalidCursor(ValueError):
    """A page cursor that this module did not hand out (or that was altered on the way)."""


def encode_cursor(job_id: str) -> str:
    """Opaque to clients: base64url of the last id on the page, padding stripped."""
    return base64.urlsafe_b64encode(job_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        job_id = raw.decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursor(
            f"malformed cursor {cursor[:64]!r}: pass back the cursor of a previous page"
        ) from None
    if not _ID_PATTERN.match(job_id):
        raise InvalidCursor(f"malformed cursor {cursor[:64]!r}: it does not hold a job id")
    return job_id


def row_to_job(
    row: JobRow,
    transitions: Iterable[TransitionRow],
    labels: Mapping[str, str],
    queue_position: int | None,
) -> v1.Job:
    """A ``v1.Job`` from its row; the columns win over the stored spec for what the system decides."""
    spec = v1.decode(row.spec, v1.JobSpec)
    fields: dict[str, Any] = {f: getattr(spec, f) for f in v1.JobSpec.__struct_fields__}
    fields.update(
        name=row.name,
        node=row.node,
        backend=row.backend if row.backend is not None else spec.backend,
        priority=row.priority,
        max_attempts=row.max_attempts,
        labels=dict(labels),
    )
    return v1.Job(
        **fields,
        id=row.id,
        owner=row.owner,
        state=v1.JobState(row.state),
        reason=feasibility.with_position(row.reason, queue_position, row.node),
        attempt=row.attempt,
        queue_position=queue_position,
        exit_code=row.exit_code,
        created_at=row.created_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        transitions=[
            v1.TransitionRecord(state=v1.JobState(t.state), at=t.at, reason=t.reason, attempt=t.attempt)
            for t in transitions
        ],
        usage=v1.decode(row.usage, v1.Usage) if row.usage else None,
        artifacts=v1.decode(row.artifacts, list[v1.Artifact]) if row.artifacts else [],
        ports=v1.decode(row.ports, dict[str, str]) if row.ports else {},
        details=v1.decode(row.details, dict[str, Any]) if row.details else {},
    )


async def get_job(session: AsyncSession, job_id: str, *, owner: str | None = None) -> v1.Job | None:
    """One job, or None when it does not exist (or, with ``owner``, belongs to someone else)."""
    query = select(JobRow).where(JobRow.id == job_id)
    if owner is not None:
        query = query.where(JobRow.owner == owner)
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None:
        return None
    return (await _assemble(session, [row]))[0]


async def list_jobs(
    session: AsyncSession,
    *,
    states: Sequence[str] | None = None,
    node: str | None = None,
    name: str | None = None,
    labels: Mapping[str, str] | None = None,
    owner: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[v1.Job], str | None]:
    """A page of jobs, newest first, and the cursor of the next page (None on the last one).

    Filters combine with AND; ``states`` matches any of its states and ``labels`` needs every pair.
    An empty ``states`` or ``labels`` filters nothing. Raises ``InvalidCursor`` for a cursor this module
    did not produce and ``ValueError`` for a limit outside 1..MAX_PAGE_SIZE.
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}, not {limit}")
    query = select(JobRow).where(
        *_conditions(states=states, node=node, name=name, labels=labels, owner=owner)
    )
    if cursor is not None:
        query = query.where(JobRow.id < decode_cursor(cursor))
    rows = list((await session.execute(query.order_by(JobRow.id.desc()).limit(limit + 1))).scalars())
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return await _assemble(session, rows[:limit]), next_cursor


async def count_jobs(
    session: AsyncSession,
    *,
    node: str | None = None,
    name: str | None = None,
    labels: Mapping[str, str] | None = None,
    owner: str | None = None,
) -> dict[str, int]:
    """How many jobs are in each state (states with none are left out): one ``GROUP BY`` query."""
    query = (
        select(JobRow.state, func.count())
        .where(*_conditions(states=None, node=node, name=name, labels=labels, owner=owner))
        .group_by(JobRow.state)
    )
    return {state: int(n) for state, n in (await session.execute(query)).all()}


def _conditions(
    *,
    states: Sequence[str] | None,
    node: str | None,
    name: str | None,
    labels: Mapping[str, str] | None,
    owner: str | None,
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if states:
        conditions.append(JobRow.state.in_(list(states)))
    if node is not None:
        conditions.append(JobRow.node == node)
    if name is not None:
        conditions.append(JobRow.name == name)
    if owner is not None:
        conditions.append(JobRow.owner == owner)
    for key, value in (labels or {}).items():
        conditions.append(
            exists().where(
                JobLabelRow.job_id == JobRow.id, JobLabelRow.key == key, JobLabelRow.value == value
            )
        )
    return conditions


async def _assemble(session: AsyncSession, rows: Sequence[JobRow]) -> list[v1.Job]:
    """Jobs for ``rows`` with their transitions, labels and queue positions, one query each."""
    if not rows:
        return []
    ids = [r.id for r in rows]
    transitions: dict[str, list[TransitionRow]] = defaultdict(list)
    result = await session.execute(
        select(TransitionRow).where(TransitionRow.job_id.in_(ids)).order_by(TransitionRow.id)
    )
    for t in result.scalars():
        transitions[t.job_id].append(t)
    labels: dict[str, dict[str, str]] = defaultdict(dict)
    for job_id, key, value in await session.execute(
        select(JobLabelRow.job_id, JobLabelRow.key, JobLabelRow.value).where(JobLabelRow.job_id.in_(ids))
    ):
        labels[job_id][key] = value
    positions = await queue_positions(session, rows)
    return [row_to_job(r, transitions[r.id], labels[r.id], positions.get(r.id)) for r in rows]


async def queue_positions(session: AsyncSession, rows: Sequence[JobRow]) -> dict[str, int]:
    """0-based rank of each queued row among the queued jobs of its node (``priority desc, id asc``).

    One window-function query for all rows; rows that are not queued on a node get no entry.
    """
    queued = [r for r in rows if r.state == _QUEUED and r.node is not None]
    if not queued:
        return {}
    rank = func.row_number().over(
        partition_by=JobRow.node, order_by=(JobRow.priority.desc(), JobRow.id.asc())
    )
    ranked = (
        select(JobRow.id.label("id"), (rank - 1).label("position"))
        .where(JobRow.state == _QUEUED, JobRow.node.in_(sorted({r.node for r in queued if r.node})))
        .subquery()
    )
    result = await session.execute(
        select(ranked.c.id, ranked.c.position).where(ranked.c.id.in_([r.id for r in queued]))
    )
    return {job_id: int(position) for job_id, position in result}


async def list_nodes(session: AsyncSession, *, now: datetime | None = None) -> list[v1.NodeView]:
    """Every node with its load, in three queries.

    ``queued_seconds`` is what placement minimises: the expected runtime of everything queued on the node
    plus what is left of what runs there, over its slots. A job without an expected runtime counts 0.
    """
    now = now or datetime.now(UTC)
    nodes = list((await session.execute(select(NodeRow).order_by(NodeRow.name))).scalars())
    queued: dict[str, tuple[int, float]] = {}
    for node, count, total in await session.execute(
        select(JobRow.node, func.count(), func.coalesce(func.sum(JobRow.expected_runtime), 0.0))
        .where(JobRow.state == _QUEUED, JobRow.node.is_not(None))
        .group_by(JobRow.node)
    ):
        if node is not None:
            queued[node] = (int(count), float(total or 0.0))
    running: dict[str, int] = defaultdict(int)
    remaining: dict[str, float] = defaultdict(float)
    for node, expected, started, dispatched in await session.execute(
        select(JobRow.node, JobRow.expected_runtime, JobRow.started_at, JobRow.dispatched_at).where(
            JobRow.state.in_(_ON_NODE), JobRow.node.is_not(None)
        )
    ):
        if node is None:
            continue
        running[node] += 1
        since = started or dispatched
        elapsed = (now - since).total_seconds() if since is not None else 0.0
        remaining[node] += max(0.0, (expected or 0.0) - elapsed)
    views = []
    for n in nodes:
        capacity = v1.decode(n.capacity, v1.NodeCapacity)
        count, queued_total = queued.get(n.name, (0, 0.0))
        views.append(
            v1.NodeView(
                name=n.name,
                backend=n.backend,
                state=n.state,
                capacity=capacity,
                labels=v1.decode(n.labels, dict[str, str]) if n.labels else {},
                pool=n.pool,
                running=running[n.name],
                queued=count,
                queued_seconds=(queued_total + remaining[n.name]) / max(1, capacity.slots),
                last_heartbeat=n.last_heartbeat,
                gpus=v1.decode(n.gpus, list[v1.GpuInfo]) if n.gpus else [],
                version=n.version,
            )
        )
    return views
