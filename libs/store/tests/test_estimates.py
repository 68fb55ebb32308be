"""Queue positions under fair share and estimated starts, as ``GET /v1/jobs`` and ``/v1/jobs/{id}`` show
them: the rules on their own, then read from a real database."""

from __future__ import annotations

import heapq
import random
from datetime import UTC, datetime, timedelta

import pytest

from jobwire.contracts import v1
from jobwire.store import get_job, list_jobs
from jobwire.store.estimates import NodeQueue, fair_position, start_offsets
from jobwire.store.models import NodeRow, QuotaRow


def test_fair_position_counts_own_jobs_ahead_and_others_by_share():
    # bob's first job with 2,000 of alice's queued: nothing of hers starts before it
    assert fair_position(0, 1.0, [(2000, 1.0)]) == 0
    # bob's 10th: 9 of his own and 9 of hers (equal shares); with her share 2, 18 of hers
    assert fair_position(9, 1.0, [(2000, 1.0)]) == 18
    assert fair_position(9, 1.0, [(2000, 2.0)]) == 27
    # alice's 5th, bob has only 3 queued: all 3 of his
    assert fair_position(4, 1.0, [(3, 1.0)]) == 7


def test_start_offsets_play_the_node_forward():
    # 2 slots: one runs 60 s more, one is free; jobs ahead take 30 s each
    assert start_offsets([60.0], 2, 30.0, [0, 1, 2, 3]) == {0: 0.0, 1: 30.0, 2: 60.0, 3: 60.0}
    # past the simulated stretch: slots per mean runtime
    got = start_offsets([], 4, 10.0, [100])
    assert got[100] == pytest.approx(250.0)


def _played(free_in: list[float], slots: int, mean: float, positions: list[int]) -> dict[int, float]:
    """The node played job by job: each job ahead takes the slot that frees first for ``mean``."""
    heap = sorted(max(0.0, f) for f in free_in)[:slots]
    heap += [0.0] * (slots - len(heap))
    heapq.heapify(heap)
    out, taken = {}, 0
    for p in sorted(set(positions)):
        while taken < p:
            heapq.heapreplace(heap, heap[0] + mean)
            taken += 1
        out[p] = heap[0]
    return out


def test_start_offsets_equal_the_node_played_job_by_job():
    """Computed, not played (a long queue was thousands of heap steps per node and page): the same
    starts as playing every job ahead, for slots freeing far apart, together, or never busy, any mean
    runtime (0 included) and queues up to 5,000 ahead."""
    rnd = random.Random(5)
    for _ in range(2000):
        slots = rnd.choice([1, 2, 3, 4, 8, 16, 64])
        free_in = [
            rnd.choice([rnd.uniform(0, 5000), float(rnd.randrange(0, 600, 30)), 0.0, -5.0])
            for _ in range(rnd.randrange(0, slots + 3))
        ]
        mean = rnd.choice([0.0, 30.0, 60.0, rnd.uniform(0.1, 900)])
        positions = [rnd.randrange(0, 5000) for _ in range(8)]
        got = start_offsets(free_in, slots, mean, positions)
        want = _played(free_in, slots, mean, positions)
        assert got == pytest.approx(want, rel=1e-9), (free_in, slots, mean)


@pytest.mark.integration
async def test_listed_and_single_jobs_show_fair_positions_and_starts(sessions, make_job, add):
    now = datetime.now(UTC)
    running = make_job(
        node="n", state="running", expected_runtime=100.0, started_at=now - timedelta(seconds=40)
    )
    alice = [make_job(node="n", owner="alice", expected_runtime=30.0) for _ in range(4)]
    bob = [make_job(node="n", owner="bob", expected_runtime=30.0) for _ in range(2)]
    node = NodeRow(
        name="n",
        backend="local",
        state="up",
        capacity=v1.encode(v1.NodeCapacity(slots=2, cpus=2.0)),
        registered_at=now,
        last_heartbeat=now,
    )
    await add(node, running, *alice, *bob, QuotaRow(owner="alice", share=2.0))
    async with sessions() as session:
        page, _ = await list_jobs(session, states=["queued"], limit=50)
        single = await get_job(session, bob[1].job.id)
        not_queued, _ = await list_jobs(session, states=["running"])
    got = {j.id: j for j in page}
    # alice (share 2): her k-th has k of hers and k/2 of bob's ahead; bob's k-th, k of his and 2k of hers
    positions = [got[s.job.id].queue_position for s in alice + bob]
    assert positions == [0, 1, 3, 4, 0, 3]
    assert single is not None and single.queue_position == 3
    # one slot free now, the other in 60 s (100 expected, 40 run); each job ahead takes 30 s
    offsets = {0: 0.0, 1: 30.0, 3: 60.0, 4: 90.0}
    for s in alice + bob:
        job = got[s.job.id]
        assert job.estimated_start is not None
        wait = (job.estimated_start - now).total_seconds()
        assert wait == pytest.approx(offsets[job.queue_position], abs=3.0), job.queue_position
    assert single.estimated_start == pytest.approx(
        got[bob[1].job.id].estimated_start, abs=timedelta(seconds=2)
    )
    # not queued: no position, no estimate
    assert not_queued and all(j.estimated_start is None and j.queue_position is None for j in not_queued)


def test_a_node_queue_gives_fair_position_for_every_job_and_share():
    """``NodeQueue.position`` (bisection over owners grouped by share, what a page uses) is
    ``fair_position`` exactly: shares equal, mixed, fractional, zero; counts from 0 to thousands."""
    rnd = random.Random(11)
    for _ in range(3000):
        drawn = [rnd.uniform(0, 4) for _ in range(5)]
        shares = rnd.choice([[1.0], [1.0, 2.0, 0.5], [0.3, 1.7, 3.0, 0.0], drawn])
        queued = [
            (rnd.choice([0, 1, 2, rnd.randrange(50), rnd.randrange(5000)]), rnd.choice(shares))
            for _ in range(rnd.randrange(0, 60))
        ]
        queue = NodeQueue(queued)
        for _ in range(10):
            ahead = rnd.choice([0, 1, rnd.randrange(100), rnd.randrange(6000)])
            share = rnd.choice([*shares, 0.0, 1.0])
            assert queue.position(ahead, share) == fair_position(ahead, share, queued), (ahead, share, queued)
