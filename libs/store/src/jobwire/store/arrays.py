"""Reading arrays: per-state counts over every task, and a page of tasks in index order.

Tasks not made into jobs yet have no row: they are counted, and listed, as the array is (``queued``,
``held`` or ``cancelled``). Three queries whatever the array's size: the array, its counts (one
GROUP BY over ``ix_jobs_array_id_state``), and the page (a range of ``ix_jobs_array_id_index``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from jobwire.contracts import v1

from .models import ArrayRow, JobRow

S = v1.JobState
#: the largest page of tasks served at once
MAX_TASK_PAGE = 1000


def unmade_state(row: ArrayRow) -> v1.JobState:
    """What a task not made into a job yet is: what its array is."""
    return S.CANCELLED if row.cancelled else S.HELD if row.held else S.QUEUED


async def get_array_row(session: AsyncSession, array_id: str, *, owner: str | None = None) -> ArrayRow | None:
    row = await session.get(ArrayRow, array_id)
    return None if row is None or (owner is not None and row.owner != owner) else row


async def array_counts(session: AsyncSession, row: ArrayRow) -> dict[str, int]:
    """Tasks by state, over all ``count`` of them (every state present, 0 where none)."""
    counts = {s.value: 0 for s in S}
    found = await session.execute(
        select(JobRow.state, func.count()).where(JobRow.array_id == row.id).group_by(JobRow.state)
    )
    for state, n in found:
        counts[state] = int(n)
    counts[unmade_state(row).value] += row.count - row.materialised
    return counts


async def get_array(
    session: AsyncSession,
    array_id: str,
    *,
    owner: str | None = None,
    after: int | None = None,
    limit: int = 100,
    states: Collection[str] = (),
) -> v1.ArrayView | None:
    """The array with its counts and the tasks after index ``after`` (None: from the first); with
    ``states``, only the tasks in one of them (which tasks failed, say), still in index order."""
    if not 1 <= limit <= MAX_TASK_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_TASK_PAGE}, not {limit}")
    row = await get_array_row(session, array_id, owner=owner)
    if row is None:
        return None
    first = row.start if after is None else max(row.start, after + 1)
    last = row.start + row.count  # one past the last index
    query = select(JobRow).where(JobRow.array_id == row.id, JobRow.array_index >= first)
    if states:
        query = query.where(JobRow.state.in_(sorted(set(states)))).limit(limit)
    else:
        query = query.where(JobRow.array_index < min(first + limit, last))
    made = list((await session.execute(query.order_by(JobRow.array_index))).scalars())
    if states:
        tasks = [_task(job) for job in made]
        if unmade_state(row).value in states:  # tasks without a row come after every made one
            begin = max(first, row.start + row.materialised)
            stub = unmade_state(row)
            tasks += [
                v1.ArrayTask(index=i, state=stub) for i in range(begin, min(last, begin + limit - len(tasks)))
            ]
    else:
        by_index = {job.array_index: job for job in made}
        tasks = [
            _task(by_index[i]) if i in by_index else v1.ArrayTask(index=i, state=unmade_state(row))
            for i in range(first, min(first + limit, last))
        ]
    more = len(tasks) == limit and tasks[-1].index < last - 1
    return v1.ArrayView(
        id=row.id,
        owner=row.owner,
        name=row.name,
        count=row.count,
        start=row.start,
        parallelism=row.parallelism,
        materialised=row.materialised,
        held=row.held,
        cancelled=row.cancelled,
        done=row.ended_at is not None,
        counts=await array_counts(session, row),
        created_at=row.created_at,
        tasks=tasks,
        next_cursor=str(tasks[-1].index) if more else None,
    )


def _task(job: JobRow) -> v1.ArrayTask:
    return v1.ArrayTask(
        index=job.array_index or 0,
        state=S(job.state),
        job_id=job.id,
        attempt=job.attempt,
        node=job.node,
        exit_code=job.exit_code,
        reason=job.reason,
    )


_STATES = {s.value: s for s in S}  # ``JobState(value)`` costs microseconds a call: a page makes hundreds
_ENDS = frozenset((*v1.TERMINAL, S.LOST))


def attempts_of(transitions: Iterable[Any]) -> list[v1.AttemptRecord]:
    """Each attempt's node, start, end, exit code and reason, from the job's history (``queued``
    between attempts belongs to none)."""
    by: dict[int, v1.AttemptRecord] = {}
    for t in transitions:
        if t.attempt < 1:
            continue
        state = _STATES[t.state]
        rec = by.setdefault(t.attempt, v1.AttemptRecord(attempt=t.attempt, state=state))
        rec.node = rec.node or t.node
        if state is S.RUNNING and rec.started_at is None:
            rec.started_at = t.at
        if state in _ENDS:
            rec.state, rec.exit_code, rec.reason, rec.ended_at = state, t.exit_code, t.reason, t.at
        elif rec.ended_at is None and state is not S.QUEUED:
            rec.state = state
    return [by[n] for n in sorted(by)]


__all__ = ["MAX_TASK_PAGE", "array_counts", "attempts_of", "get_array", "get_array_row", "unmade_state"]
