"""A waiting gang keeps its nodes, and they take only jobs that cannot delay it (backfill), on the real
scheduler with SQLite and PostgreSQL and fake nodes that report only when told."""

import asyncio
import time

import pytest

from jobwire.contracts import v1
from jobwire.scheduler import gang
from jobwire.scheduler.cluster import NodeState, RunningJob
from tests.support.fake_node import FakeNode, submit

pytestmark = pytest.mark.integration
S = v1.JobState


def spec(runtime: float, **kw) -> v1.JobSpec:  # type: ignore[no-untyped-def]
    return v1.JobSpec(command=["true"], expected_runtime=runtime, **kw)


async def never_sent(node: FakeNode, job: str, seconds: float) -> None:
    """``job`` is not dispatched to ``node`` for ``seconds`` (the scheduler ticks every 0.1 s)."""
    await asyncio.sleep(seconds)
    assert job not in node.runs, f"{job} was dispatched to {node.name}"


async def test_kept_nodes_take_only_jobs_that_end_before_the_gang_could_start(scheduler, clean_bus, events):
    nodes = [await FakeNode(clean_bus, f"n{i}").start() for i in range(3)]
    n0, n1, n2 = nodes
    try:
        long = await submit(clean_bus, spec(3.0, node="n0"))
        await n0.wait_runs(1)
        await n0.report(long, "starting")
        await n0.report(long, "running")
        await events.wait_state(long, "running")
        t_running = time.monotonic()
        g = await submit(clean_bus, spec(10.0, resources=v1.Resources(nodes=3)))
        await events.wait_state(g, "queued")

        # expected to end (1 s) before the gang could start (n0's job has ~3 s left): backfilled on n1
        short = await submit(clean_bus, spec(1.0, node="n1"))
        await n1.wait_runs(1, timeout=30)
        assert short in n1.runs
        await n1.report(short, "starting")
        await n1.report(short, "running")
        # would still run when the gang could start: it waits on the kept node n2
        slow = await submit(clean_bus, spec(600.0, node="n2"))
        await events.wait_state(slow, "queued")
        await never_sent(n2, slow, 1.0)

        # n0's job overran its expected runtime: the gang could start at once, so nothing is backfilled
        # any more, however short (a stream of short jobs cannot hold the gang back)
        await asyncio.sleep(max(0.0, t_running + 3.5 - time.monotonic()))
        tiny = await submit(clean_bus, spec(0.5, node="n2"))
        await events.wait_state(tiny, "queued")
        await never_sent(n2, tiny, 1.0)
        assert g not in n0.runs

        await n0.report(long, "finished", outcome=S.SUCCEEDED, exit_code=0)
        await n1.report(short, "finished", outcome=S.SUCCEEDED, exit_code=0)
        for n in nodes:  # every rank at once, before either job that waited on n2
            await n.wait_runs(2 if n is not n2 else 1, timeout=30)
            assert g in n.runs
        assert slow not in n2.runs and tiny not in n2.runs
        for rank, n in enumerate(sorted(nodes, key=lambda n: n.runs[g].gang.rank)):
            assert n.runs[g].gang.rank == rank
            await n.report(g, "running", msg_id=f"{g}:running:{n.name}")
        for n in nodes:  # the ranks report the same job and attempt: the node names each message
            await n.report(g, "finished", outcome=S.SUCCEEDED, exit_code=0, msg_id=f"{g}:finished:{n.name}")
        await events.wait_state(g, "succeeded")
        await n2.wait_runs(2, timeout=30)  # then n2's queue moves again: the slow job first
        assert slow in n2.runs and tiny not in n2.runs
    finally:
        for n in nodes:
            await n.stop()


def node(slots: int = 4, cpus: float = 4) -> NodeState:
    return NodeState("x", "local", v1.NodeCapacity(slots=slots, cpus=cpus))


def test_a_multi_slot_node_is_ready_for_a_rank_when_enough_of_its_work_ended():
    n = node()
    now = 100.0
    for i, left in enumerate((5.0, 20.0, 50.0)):
        n.running[f"j{i}"] = RunningJob(f"j{i}", 1, v1.Resources(cpus=1), 60.0, now - 60.0 + left)
    assert gang.ready_in(n, v1.Resources(cpus=1), now) == 0.0  # one CPU is free already
    assert gang.ready_in(n, v1.Resources(cpus=2), now) == pytest.approx(5.0)  # the first to end
    assert gang.ready_in(n, v1.Resources(cpus=4), now) == pytest.approx(50.0)  # all of them
    n.running["j0"].since = now - 120.0  # overran: counted as ending now
    assert gang.ready_in(n, v1.Resources(cpus=2), now) == 0.0
