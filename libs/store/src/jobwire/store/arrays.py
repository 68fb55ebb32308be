"""Reading arrays: per-state counts over every task, and a page of tasks in index order.

Tasks not made into jobs yet have no row: they are counted, and listed, as the array is (``queued``,
``held`` or ``cancelled``). Three queries whatever the array's size: the array, its counts (one
GROUP BY over ``ix_jobs_array_id_state``), and the page (a range of ``ix_jobs_array_id_index``).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from jobwire.contracts import v1

from .models import ArrayRow, JobRow, TransitionRow

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
) -> v1.ArrayView | None:
    """The array with its counts and the tasks after index ``after`` (None: from the first)."""
    if not 1 <= limit <= MAX_TASK_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_TASK_PAGE}, not {limit}")
    row = await get_array_row(session, array_id, owner=owner)
    if row is None:
        return None
    first = row.start if after is None else max(row.start, after + 1)
    end = min(first + limit, row.start + row.count)
    made = {
        task.array_index: task
        for task in (
            await session.execute(
                select(JobRow)
                .where(JobRow.array_id == row.id, JobRow.array_index >= first, JobRow.array_index < end)
                .order_by(JobRow.array_index)
            )
        ).scalars()
    }
    tasks = []
    for index in range(first, end):
        job = made.get(index)
        if job is None:
            tasks.append(v1.ArrayTask(index=index, state=unmade_state(row)))
        else:
            tasks.append(
                v1.ArrayTask(
                    index=index,
                    state=S(job.state),
                    job_id=job.id,
                    attempt=job.attempt,
                    node=job.node,
                    exit_code=job.exit_code,
                    reason=job.reason,
                )
            )
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
        next_cursor=str(end - 1) if end < row.start + row.count else None,
    )


def attempts_of(transitions: Iterable[TransitionRow]) -> list[v1.AttemptRecord]:
    """Each attempt's node, start, end, exit code and reason, from the job's history (``queued``
    between attempts belongs to none)."""
    by: dict[int, v1.AttemptRecord] = {}
    ends = (*v1.TERMINAL, S.LOST)
    for t in transitions:
        if t.attempt < 1:
            continue
        state = S(t.state)
        rec = by.setdefault(t.attempt, v1.AttemptRecord(attempt=t.attempt, state=state))
        rec.node = rec.node or t.node
        if state is S.RUNNING and rec.started_at is None:
            rec.started_at = t.at
        if state in ends:
            rec.state, rec.exit_code, rec.reason, rec.ended_at = state, t.exit_code, t.reason, t.at
        elif rec.ended_at is None and state is not S.QUEUED:
            rec.state = state
    return [by[n] for n in sorted(by)]


__all__ = ["MAX_TASK_PAGE", "array_counts", "attempts_of", "get_array", "get_array_row", "unmade_state"]
