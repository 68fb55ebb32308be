"""Queue positions for a page of jobs: one count per node and priority, then the gaps between the page's
jobs.

A queued job's position is the number of queued jobs of its node ahead of it (``priority desc, id
asc``). Counting that per row costs each row a walk of everything ahead of it: a ``state=queued`` page on
a node with a long queue walked that queue once per row. Here the page's jobs are taken per node and
priority: the first of them in the queue is counted once, and the others are placed by reading only the
queue between the first and the last of them (one index range, ids only): for a page that is a stretch of
the queue, that is the page itself. When the page is spread thin over a long queue, no more than
``STRETCH_LIMIT`` entries are read and each remaining job is counted on its own, as before.

The pieces are statements to be sent alone (``queue_positions``) or inside a larger read
(``estimates``, which sends them with what else a page's estimates need in one statement).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import ColumnElement, ScalarSelect, Select, bindparam, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, aliased

from jobwire.contracts import v1

from .models import JobRow

_QUEUED = v1.JobState.QUEUED.value
#: how much of a node's queue a page's positions may read before counting job by job instead
STRETCH_LIMIT = 5000


class Queued(Protocol):
    """What a position needs of a job: an ORM row or a plain result row alike."""

    @property
    def id(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def node(self) -> str | None: ...
    @property
    def owner(self) -> str: ...
    @property
    def priority(self) -> int: ...


#: (node, owner or None, priority): the jobs a position is counted among
Band = tuple[str, str | None, int]


def bands_of(rows: Iterable[Queued], by_owner: bool) -> dict[Band, list[Queued]]:
    """The queued rows with a node, per band, each band in queue order (id order within a priority)."""
    bands: dict[Band, list[Queued]] = defaultdict(list)
    for row in rows:
        if row.state == _QUEUED and row.node is not None:
            bands[row.node, row.owner if by_owner else None, row.priority].append(row)
    for jobs in bands.values():
        jobs.sort(key=lambda r: r.id)
    return dict(bands)


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


AHEAD_OF_EACH = {False: _ahead_of_each(False), True: _ahead_of_each(True)}


@functools.lru_cache(maxsize=256)
def stretches(count: int, by_owner: bool) -> Select[Any]:
    """``(band, id)`` of the queue between the first and last page job of ``count`` bands (parameters
    ``s{i}_node``, ``s{i}_owner``, ``s{i}_priority``, ``s{i}_lo``, ``s{i}_hi``), at most
    ``:stretch_limit`` rows: one index range per band, ``UNION ALL`` (an ``OR`` of them lets a planner
    walk every queued job instead)."""
    ranges = []
    for i in range(count):
        conditions = [
            JobRow.node == bindparam(f"s{i}_node"),
            JobRow.state == _QUEUED,
            JobRow.priority == bindparam(f"s{i}_priority"),
            JobRow.id.between(bindparam(f"s{i}_lo"), bindparam(f"s{i}_hi")),
        ]
        if by_owner:
            conditions.append(JobRow.owner == bindparam(f"s{i}_owner"))
        ranges.append(select(literal(i).label("band"), JobRow.id).where(*conditions))
    stretch = union_all(*ranges).subquery("stretch")
    return select(stretch.c.band, stretch.c.id).limit(bindparam("stretch_limit"))


def stretch_params(spread: Sequence[tuple[Band, list[Queued]]]) -> dict[str, Any]:
    params: dict[str, Any] = {"stretch_limit": STRETCH_LIMIT + 1}
    for i, ((node, owner, priority), jobs) in enumerate(spread):
        params.update(
            {
                f"s{i}_node": node,
                f"s{i}_owner": owner,
                f"s{i}_priority": priority,
                f"s{i}_lo": jobs[0].id,
                f"s{i}_hi": jobs[-1].id,
            }
        )
    return params


def place(
    spread: Sequence[tuple[Band, list[Queued]]], found: Sequence[tuple[int, str]], positions: dict[str, int]
) -> None:
    """The positions of the spread bands' other jobs from their stretches (``found``), when the read
    was complete; a band whose first job left the queue meanwhile is left to be counted."""
    if len(found) > STRETCH_LIMIT:
        return
    queues: dict[int, list[str]] = defaultdict(list)
    for band, job_id in found:
        queues[int(band)].append(job_id)
    for i, (_band, jobs) in enumerate(spread):
        if jobs[0].id not in positions:
            continue  # it left the queue meanwhile: its band is counted by ``missing``
        wanted = {r.id for r in jobs}
        position = positions[jobs[0].id]
        for job_id in sorted(queues[i]):  # within a band, queue order is id order
            if job_id in wanted:
                positions[job_id] = position
            position += 1


def missing(bands: Mapping[Band, list[Queued]], positions: Mapping[str, int]) -> list[str]:
    return [r.id for jobs in bands.values() for r in jobs if r.id not in positions]


async def count_ahead(session: AsyncSession, ids: list[str], by_owner: bool) -> dict[str, int]:
    if not ids:
        return {}
    return await session.run_sync(count_ahead_sync, ids, by_owner)


def count_ahead_sync(session: Session, ids: list[str], by_owner: bool) -> dict[str, int]:
    if not ids:
        return {}
    found = session.connection().execute(AHEAD_OF_EACH[by_owner], {"ids": ids})
    return {job_id: int(n) for job_id, n in found}


async def queue_positions(
    session: AsyncSession, rows: Iterable[Queued], *, by_owner: bool = False
) -> dict[str, int]:
    """Position of every queued row with a node, by id (others have none). ``by_owner``: among its own
    owner's queued jobs on that node only (how many of them start before it under fair share).

    Two statements whatever the page holds: the count for the first job of every band, then the
    stretches of every band with several jobs. A third counts what is left only when the stretches
    pass ``STRETCH_LIMIT`` entries or a job left the queue between the reads."""
    bands = bands_of(rows, by_owner)
    if not bands:
        return {}
    positions = await count_ahead(session, [jobs[0].id for jobs in bands.values()], by_owner)
    spread = [(band, jobs) for band, jobs in bands.items() if len(jobs) > 1]
    if spread:
        found = await session.execute(stretches(len(spread), by_owner), stretch_params(spread))
        place(spread, [(int(b), i) for b, i in found], positions)
    # spread too thin for one read, or left the queue between the reads: counted like the first ones
    positions.update(await count_ahead(session, missing(bands, positions), by_owner))
    return positions
