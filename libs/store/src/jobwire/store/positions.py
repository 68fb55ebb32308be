"""Queue positions for a page of jobs: one count per node and priority, then the gaps between the page's
jobs.

A queued job's position is the number of queued jobs of its node ahead of it (``priority desc, id
asc``). Counting that per row costs each row a walk of everything ahead of it: a ``state=queued`` page on
a node with a long queue walked that queue once per row. Here the page's jobs are taken per node and
priority: the first of them in the queue is counted once, and the others are placed by reading only the
queue between the first and the last of them (one index range of ``ix_jobs_node_state_priority``, ids
only): for a page that is a stretch of the queue, that is the page itself. When the page is spread thin
over a long queue, no more than ``STRETCH_LIMIT`` entries are read and each remaining job is counted on
its own, as before.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, Select, bindparam, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from jobwire.contracts import v1

from .models import JobRow

_QUEUED = v1.JobState.QUEUED.value
#: how much of a node's queue a page's positions may read before counting job by job instead
STRETCH_LIMIT = 5000


def _ahead_of_each(by_owner: bool) -> Select[Any]:
    """``(id, jobs ahead)`` for every id in ``:ids``: two index-range counts per row asked for (the
    first job of each band only), all in one statement."""
    other = aliased(JobRow)
    band = [other.node == JobRow.node, other.state == _QUEUED]
    if by_owner:
        band.append(other.owner == JobRow.owner)

    def count(*conditions: ColumnElement[bool]) -> ScalarSelect[Any]:
        return select(func.count()).select_from(other).where(*band, *conditions).scalar_subquery()

    ahead = count(other.priority > JobRow.priority) + count(
        other.priority == JobRow.priority, other.id < JobRow.id
    )
    return select(JobRow.id, ahead).where(JobRow.id.in_(bindparam("ids", expanding=True)))


_AHEAD_OF_EACH = {False: _ahead_of_each(False), True: _ahead_of_each(True)}


async def _count_ahead(session: AsyncSession, ids: list[str], by_owner: bool) -> dict[str, int]:
    if not ids:
        return {}
    found = await session.execute(_AHEAD_OF_EACH[by_owner], {"ids": ids})
    return {job_id: int(n) for job_id, n in found}


async def queue_positions(
    session: AsyncSession, rows: Iterable[JobRow], *, by_owner: bool = False
) -> dict[str, int]:
    """Position of every queued row with a node, by id (others have none). ``by_owner``: among its own
    owner's queued jobs on that node only (how many of them start before it under fair share).

    Two statements whatever the page holds: the count for the first job of every band, then the
    stretches of every band with several jobs (one index range each, ``UNION ALL``: an ``OR`` of them
    lets a planner walk every queued job instead). A third counts what is left only when the stretches
    pass ``STRETCH_LIMIT`` entries or a job left the queue between the reads."""
    bands: dict[tuple[str, str | None, int], list[JobRow]] = defaultdict(list)
    for row in rows:
        if row.state == _QUEUED and row.node is not None:
            bands[row.node, row.owner if by_owner else None, row.priority].append(row)
    if not bands:
        return {}
    for jobs in bands.values():
        jobs.sort(key=lambda r: r.id)
    positions = await _count_ahead(session, [jobs[0].id for jobs in bands.values()], by_owner)
    spread = {band: jobs for band, jobs in bands.items() if len(jobs) > 1}
    if spread:
        ranges = []
        for i, ((node, owner, priority), jobs) in enumerate(spread.items()):
            conditions = [
                JobRow.node == node,
                JobRow.state == _QUEUED,
                JobRow.priority == priority,
                JobRow.id.between(jobs[0].id, jobs[-1].id),
            ]
            if owner is not None:
                conditions.append(JobRow.owner == owner)
            ranges.append(select(literal(i).label("band"), JobRow.id).where(*conditions))
        stretch = union_all(*ranges).subquery()
        found = (await session.execute(select(stretch).limit(STRETCH_LIMIT + 1))).all()
        if len(found) <= STRETCH_LIMIT:
            queues: dict[int, list[str]] = defaultdict(list)
            for band, job_id in found:
                queues[int(band)].append(job_id)
            for i, jobs in enumerate(spread.values()):
                if jobs[0].id not in positions:
                    continue  # it left the queue meanwhile: its band is counted below
                wanted = {r.id for r in jobs}
                position = positions[jobs[0].id]
                for job_id in sorted(queues[i]):  # within a band, queue order is id order
                    if job_id in wanted:
                        positions[job_id] = position
                    position += 1
    # spread too thin for one read, or left the queue between the reads: counted like the first ones
    rest = [r.id for jobs in bands.values() for r in jobs if r.id not in positions]
    positions.update(await _count_ahead(session, rest, by_owner))
    return positions
