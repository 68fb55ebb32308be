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

from sqlalchemy import Select, and_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from jobwire.contracts import v1

from .models import JobRow

_QUEUED = v1.JobState.QUEUED.value
#: how much of a node's queue a page's positions may read before counting job by job instead
STRETCH_LIMIT = 5000

_BAND = and_(JobRow.node == bindparam("node"), JobRow.state == _QUEUED)
#: the same band of one owner's jobs (fair share: an owner's own order on the node)
_OWN_BAND = and_(_BAND, JobRow.owner == bindparam("owner"))


def _ahead(band: Any) -> Select[Any]:
    return select(
        select(func.count()).where(band, JobRow.priority > bindparam("priority")).scalar_subquery()
        + select(func.count())
        .where(band, JobRow.priority == bindparam("priority"), JobRow.id < bindparam("id"))
        .scalar_subquery()
    )


def _stretch(band: Any) -> Select[Any]:
    return (
        select(JobRow.id)
        .where(
            band,
            JobRow.priority == bindparam("priority"),
            JobRow.id.between(bindparam("first_id"), bindparam("last_id")),
        )
        .order_by(JobRow.id)
        .limit(bindparam("limit"))
    )


_AHEAD = {False: _ahead(_BAND), True: _ahead(_OWN_BAND)}
_STRETCH = {False: _stretch(_BAND), True: _stretch(_OWN_BAND)}


async def ahead_of(
    session: AsyncSession, node: str, priority: int, job_id: str, owner: str | None = None
) -> int:
    params = {
        "node": node,
        "priority": priority,
        "id": job_id,
        **({"owner": owner} if owner is not None else {}),
    }
    found = await session.scalar(_AHEAD[owner is not None], params)
    return int(found or 0)


async def queue_positions(
    session: AsyncSession, rows: Iterable[JobRow], *, by_owner: bool = False
) -> dict[str, int]:
    """Position of every queued row with a node, by id (others have none). ``by_owner``: among its own
    owner's queued jobs on that node only (how many of them start before it under fair share)."""
    bands: dict[tuple[str, str | None, int], list[JobRow]] = defaultdict(list)
    for row in rows:
        if row.state == _QUEUED and row.node is not None:
            bands[row.node, row.owner if by_owner else None, row.priority].append(row)
    positions: dict[str, int] = {}
    for (node, owner, priority), jobs in bands.items():
        jobs.sort(key=lambda r: r.id)
        position = await ahead_of(session, node, priority, jobs[0].id, owner)
        positions[jobs[0].id] = position
        if len(jobs) == 1:
            continue
        params = {
            "node": node,
            **({"owner": owner} if owner is not None else {}),
            "priority": priority,
            "first_id": jobs[0].id,
            "last_id": jobs[-1].id,
            "limit": STRETCH_LIMIT + 1,
        }
        stretch = list((await session.execute(_STRETCH[owner is not None], params)).scalars())
        if len(stretch) <= STRETCH_LIMIT:
            wanted = {r.id for r in jobs}
            for job_id in stretch:  # in queue order, from the first
                if job_id in wanted:
                    positions[job_id] = position
                position += 1
        # spread too thin for one read, or left the queue between the two reads: counted on its own
        for r in jobs[1:]:
            if r.id not in positions:
                positions[r.id] = await ahead_of(session, node, priority, r.id, owner)
    return positions
