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

from sqlalchemy import Select, and_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from jobwire.contracts import v1

from .models import JobRow

_QUEUED = v1.JobState.QUEUED.value
#: how much of a node's queue a page's positions may read before counting job by job instead
STRETCH_LIMIT = 5000

_BAND = and_(JobRow.node == bindparam("node"), JobRow.state == _QUEUED)
_AHEAD = select(
    select(func.count()).where(_BAND, JobRow.priority > bindparam("priority")).scalar_subquery()
    + select(func.count())
    .where(_BAND, JobRow.priority == bindparam("priority"), JobRow.id < bindparam("id"))
    .scalar_subquery()
)
_STRETCH: Select[str] = (
    select(JobRow.id)
    .where(
        _BAND,
        JobRow.priority == bindparam("priority"),
        JobRow.id.between(bindparam("first_id"), bindparam("last_id")),
    )
    .order_by(JobRow.id)
    .limit(bindparam("limit"))
)


async def ahead_of(session: AsyncSession, node: str, priority: int, job_id: str) -> int:
    found = await session.scalar(_AHEAD, {"node": node, "priority": priority, "id": job_id})
    return int(found or 0)


async def queue_positions(session: AsyncSession, rows: Iterable[JobRow]) -> dict[str, int]:
    """Position of every queued row with a node, by id (others have none)."""
    bands: dict[tuple[str, int], list[JobRow]] = defaultdict(list)
    for row in rows:
        if row.state == _QUEUED and row.node is not None:
            bands[row.node, row.priority].append(row)
    positions: dict[str, int] = {}
    for (node, priority), jobs in bands.items():
        jobs.sort(key=lambda r: r.id)
        position = await ahead_of(session, node, priority, jobs[0].id)
        positions[jobs[0].id] = position
        if len(jobs) == 1:
            continue
        params = {
            "node": node,
            "priority": priority,
            "first_id": jobs[0].id,
            "last_id": jobs[-1].id,
            "limit": STRETCH_LIMIT + 1,
        }
        stretch = list((await session.execute(_STRETCH, params)).scalars())
        if len(stretch) <= STRETCH_LIMIT:
            wanted = {r.id for r in jobs}
            for job_id in stretch:  # in queue order, from the first
                if job_id in wanted:
                    positions[job_id] = position
                position += 1
        # spread too thin for one read, or left the queue between the two reads: counted on its own
        for r in jobs[1:]:
            if r.id not in positions:
                positions[r.id] = await ahead_of(session, node, priority, r.id)
    return positions
