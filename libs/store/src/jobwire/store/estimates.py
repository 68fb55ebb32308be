"""Where a queued job stands under fair share, and when it is expected to start, for a page of jobs.

The scheduler hands each freed slot to the owner with the lowest load per share, so the jobs that start
before a queued job are its own owner's jobs ahead of it (priority, then submit order) and, meanwhile,
the other owners' jobs in proportion to their shares: with ``k`` of its own ahead and share ``s``, owner
``o`` (share ``s_o``, ``n_o`` jobs queued on the node) starts about ``min(n_o, k * s_o / s)`` of them
first. That sum is the job's ``queue_position`` (0: the next slot is its own). Recent usage is not in the
database, so this is the steady-state order, not the scheduler's exact next pick.

The estimated start plays the node forward: its slots free as the running jobs' expected runtimes (or
walltimes) run out, and each job ahead takes a slot for the mean expected runtime of the node's queued
jobs. A page costs a fixed number of queries: the owner-bands of ``positions.queue_positions``, one
``GROUP BY`` for the queued counts per node and owner, one for the nodes, one for what runs on them and
one for the shares.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from jobwire.contracts import v1

from .models import JobRow, NodeRow, QuotaRow
from .positions import queue_positions

_QUEUED = v1.JobState.QUEUED.value
_ON_NODE = sorted(s.value for s in v1.ON_NODE)
#: jobs ahead played one by one; past that the node is taken to start ``slots`` per mean runtime
SIMULATE_AT_MOST = 20_000


def fair_position(own_ahead: int, share: float, others: Sequence[tuple[int, float]]) -> int:
    """Jobs that start before one with ``own_ahead`` of its owner's own ahead, its owner's ``share``,
    and ``others`` = (queued on the node, share) of every other owner there."""
    mine = share if share > 0 else 1.0
    return own_ahead + sum(min(n, int(own_ahead * s / mine)) for n, s in others)


def start_offsets(
    free_in: Sequence[float], slots: int, mean: float, positions: Sequence[int]
) -> dict[int, float]:
    """Seconds until a job with ``p`` jobs ahead of it gets a slot, for each ``p`` in ``positions``:
    ``free_in`` are the running jobs' seconds left, the other slots are free now."""
    slots = max(1, slots)
    heap = sorted(max(0.0, f) for f in free_in)[:slots]
    heap += [0.0] * (slots - len(heap))
    heapq.heapify(heap)
    wanted = sorted(set(positions))
    out: dict[int, float] = {}
    taken = 0
    for p in wanted:
        stop = min(p, SIMULATE_AT_MOST)
        while taken < stop:
            heapq.heapreplace(heap, heap[0] + mean)
            taken += 1
        out[p] = heap[0] + (p - stop) * mean / slots
    return out


async def estimate(
    session: AsyncSession, rows: Sequence[JobRow], now: datetime
) -> dict[str, tuple[int, datetime]]:
    """(queue position under fair share, estimated start) for each queued row with a node, by id."""
    queued = [r for r in rows if r.state == _QUEUED and r.node is not None]
    if not queued:
        return {}
    nodes = sorted({r.node for r in queued if r.node is not None})
    own = await queue_positions(session, queued, by_owner=True)
    per_owner: dict[str, dict[str, tuple[int, float]]] = defaultdict(dict)
    for node, owner, count, total in await session.execute(
        select(JobRow.node, JobRow.owner, func.count(), func.coalesce(func.sum(JobRow.expected_runtime), 0.0))
        .where(JobRow.state == _QUEUED, JobRow.node.in_(nodes))
        .group_by(JobRow.node, JobRow.owner)
    ):
        if node is not None:
            per_owner[node][owner] = (int(count), float(total or 0.0))
    slots = {
        name: v1.decode(capacity, v1.NodeCapacity).slots
        for name, capacity in await session.execute(
            select(NodeRow.name, NodeRow.capacity).where(NodeRow.name.in_(nodes))
        )
    }
    free_in: dict[str, list[float]] = defaultdict(list)
    for node, expected, started, dispatched in await session.execute(
        select(JobRow.node, JobRow.expected_runtime, JobRow.started_at, JobRow.dispatched_at).where(
            JobRow.state.in_(_ON_NODE), JobRow.node.in_(nodes)
        )
    ):
        since = started or dispatched
        elapsed = (now - since).total_seconds() if since is not None else 0.0
        if node is not None:
            free_in[node].append((expected or 0.0) - elapsed)
    shares = {
        owner: float(share)
        for owner, share in await session.execute(
            select(QuotaRow.owner, QuotaRow.share).where(QuotaRow.share.is_not(None))
        )
        if share is not None
    }

    def share_of(owner: str) -> float:
        return shares.get(owner, shares.get("*", 1.0))

    positions: dict[str, int] = {}
    for r in queued:
        assert r.node is not None
        others = [(n, share_of(o)) for o, (n, _) in per_owner[r.node].items() if o != r.owner]
        positions[r.id] = fair_position(own.get(r.id, 0), share_of(r.owner), others)
    out: dict[str, tuple[int, datetime]] = {}
    for node in nodes:
        mine = [r for r in queued if r.node == node]
        count = sum(n for n, _ in per_owner[node].values())
        total = sum(t for _, t in per_owner[node].values())
        mean = total / count if count else 0.0
        offsets = start_offsets(free_in[node], slots.get(node, 1), mean, [positions[r.id] for r in mine])
        for r in mine:
            at = now + timedelta(seconds=offsets[positions[r.id]])
            if r.not_before is not None and r.not_before > at:
                at = r.not_before
            out[r.id] = (positions[r.id], at)
    return out
