"""Why a job waits, as the scheduler records it (real NATS and database, fake nodes that heart-beat)."""

import asyncio
import re

import pytest

from jobwire.contracts import v1
from jobwire.store import queries
from jobwire.store.models import JobRow
from tests.support.fake_node import FakeNode, submit

pytestmark = pytest.mark.integration


async def job(scheduler, job_id: str) -> v1.Job:  # type: ignore[no-untyped-def]
    async with scheduler.sessions() as s:
        found = await queries.get_job(s, job_id)
    assert found is not None
    return found


async def wait_until(pred, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await pred():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_job_pinned_to_a_down_node_waits_on_it_with_the_reason(scheduler, clean_bus, events):
    node = await FakeNode(clean_bus, "pin-b").start()
    try:
        await wait_until(lambda: _up(scheduler, "pin-b"))
        node.beating = False
        await wait_until(lambda: _down(scheduler, "pin-b"))
        jid = await submit(clean_bus, v1.JobSpec(command=["true"], node="pin-b"))
        await events.wait_state(jid, "queued")
        queued = events.by_job[jid][0]
        assert queued.node == "pin-b"
        assert re.fullmatch(r"node pin-b is down since \d\d:\d\d:\d\d UTC", queued.reason or ""), queued
        stored = await job(scheduler, jid)
        assert stored.state is v1.JobState.QUEUED and stored.node == "pin-b"
        assert stored.reason == queued.reason and stored.transitions[0].reason == queued.reason
        node.beating = True  # back: the job runs there
        await node.wait_runs(1)
        assert list(node.runs) == [jid]
    finally:
        await node.stop()


async def test_jobs_behind_a_busy_node_say_so_and_how_many_wait_ahead(scheduler, clean_bus, events):
    node = await FakeNode(clean_bus, "busy-1").start()
    try:
        await wait_until(lambda: _up(scheduler, "busy-1"))
        ids = [await submit(clean_bus, v1.JobSpec(command=["true"])) for _ in range(3)]
        await node.wait_runs(1)
        await events.wait(lambda: all(events.states(i) for i in ids))
        first, second, third = [await job(scheduler, i) for i in ids]
        assert first.state is v1.JobState.STARTING and first.reason == "dispatched to busy-1"
        assert events.by_job[ids[0]][0].reason is None  # it started at once: never "busy"
        assert second.reason == "node busy-1 is busy; nothing waits ahead of it"
        assert third.reason == "node busy-1 is busy; 1 job ahead of it on busy-1"
        assert third.queue_position == 1
    finally:
        await node.stop()


async def test_a_job_no_node_fits_says_why_instead_of_waiting_silently(scheduler, clean_bus, events):
    """The gateway refuses such a job at submit; one that reaches the scheduler anyway (submitted on the
    bus, or before the nodes changed) waits with the same words."""
    node = await FakeNode(clean_bus, "cpu-only").start()
    try:
        await wait_until(lambda: _up(scheduler, "cpu-only"))
        jid = await submit(clean_bus, v1.JobSpec(command=["true"], resources=v1.Resources(gpus=1)))
        await events.wait_state(jid, "queued")
        stored = await job(scheduler, jid)
        assert stored.reason == "no registered node can run it: needs 1 GPU; no node has GPUs"
        assert stored.node is None
    finally:
        await node.stop()


async def test_expected_runtime_not_given_shows_as_not_given(scheduler, clean_bus, events):
    given = await submit(clean_bus, v1.JobSpec(command=["true"], expected_runtime=30))
    absent = await submit(clean_bus, v1.JobSpec(command=["true"]))
    await events.wait(lambda: bool(events.states(given) and events.states(absent)))
    assert (await job(scheduler, given)).expected_runtime == 30
    shown = await job(scheduler, absent)
    assert shown.expected_runtime is None
    assert v1.encode(shown).count(b'"expected_runtime":null') == 1
    async with scheduler.sessions() as s:
        row = await s.get(JobRow, absent)
        assert row is not None and row.expected_runtime == 60.0  # placement's guess, kept internal
        assert row.timeout is None  # no 2x timeout from a guess


async def _up(scheduler, name: str) -> bool:  # type: ignore[no-untyped-def]
    node = scheduler.cluster.nodes.get(name)
    return node is not None and node.up


async def _down(scheduler, name: str) -> bool:  # type: ignore[no-untyped-def]
    node = scheduler.cluster.nodes.get(name)
    return node is not None and not node.up


async def test_a_retry_that_cannot_be_placed_says_why_it_waits(scheduler, clean_bus, events):
    node = await FakeNode(clean_bus, "only-1").start()
    try:
        await wait_until(lambda: _up(scheduler, "only-1"))
        jid = await submit(clean_bus, v1.JobSpec(command=["sleep", "60"], max_attempts=2))
        await node.wait_runs(1)
        await node.report(jid, "running")
        node.beating = False  # the node vanishes with the run: lost, and no other node to retry on
        await events.wait(lambda: events.states(jid)[-2:] == ["lost", "queued"])
        retry = events.by_job[jid][-1].reason or ""
        assert re.fullmatch(r"retry 2 of 2; node only-1 is down since \d\d:\d\d:\d\d UTC", retry), retry
        assert (await job(scheduler, jid)).reason == retry
    finally:
        await node.stop()


async def test_jobs_no_node_can_take_are_read_again_only_when_a_node_comes_up(
    scheduler, clean_bus, events, monkeypatch
):
    """A job that waits for a node that does not exist costs nothing per tick: its row is not read
    again until a node comes up or changes (issue 11: 20,000 such jobs cost 0.3 s of CPU per idle
    second when each tick read them all); when one that fits comes, the job runs there."""
    from jobwire.scheduler.txn import Txn

    reads: list[set[str]] = []
    load = Txn.load

    async def spy(self: Txn, job_ids: set[str]) -> None:
        reads.append(set(job_ids))
        await load(self, job_ids)

    monkeypatch.setattr(Txn, "load", spy)
    cpu = await FakeNode(clean_bus, "idle-cpu").start()
    gpu = FakeNode(clean_bus, "idle-gpu", gpus=1)
    try:
        await wait_until(lambda: _up(scheduler, "idle-cpu"))
        ids = [
            await submit(clean_bus, v1.JobSpec(command=["true"], resources=v1.Resources(gpus=1)))
            for _ in range(3)
        ]
        await events.wait(lambda: all(events.states(i) == ["queued"] for i in ids))
        start = len(reads)

        async def ticked() -> bool:
            return len(reads) >= start + 30  # every tick loads what it touches (tick = 0.1 s here)

        await wait_until(ticked, timeout=60)
        assert not any(set(ids) & r for r in reads[start:]), "pending rows were read while nothing changed"
        await gpu.start()  # a node that fits appears: they are read once, placed and run there
        await gpu.wait_runs(1)
        assert next(iter(gpu.runs)) in ids
        assert any(set(ids) <= r for r in reads[start:])
    finally:
        await gpu.stop()
        await cpu.stop()


async def test_another_owners_node_is_passed_over_and_named_when_it_is_the_only_one(
    scheduler, clean_bus, events
):
    """A node whose executor runs jobs as its own account serves one owner: bob's job waits for the
    shared node rather than fail there, and with no shared node it says which node serves whom."""
    alices = await FakeNode(clean_bus, "own-alice", slots=2, owner="alice").start()
    try:
        await wait_until(lambda: _up(scheduler, "own-alice"))
        only = await submit(clean_bus, v1.JobSpec(command=["true"]), owner="bob")
        await events.wait_state(only, "queued")
        reason = events.by_job[only][0].reason or ""
        assert reason.startswith("no registered node can run it: no node runs jobs of owner 'bob'"), reason
        assert "own-alice (alice)" in reason
        shared = await FakeNode(clean_bus, "own-shared", slots=1).start()
        try:
            await shared.wait_runs(1)  # the shared node, once up, takes bob's waiting job
            assert list(shared.runs) == [only]
            again = await submit(clean_bus, v1.JobSpec(command=["true"]), owner="bob")
            hers = await submit(clean_bus, v1.JobSpec(command=["true"]), owner="alice")
            await alices.wait_runs(1)
            await events.wait_state(again, "queued")
            await asyncio.sleep(0.5)  # alice's node has a free slot: bob's job must still not go there
            assert list(alices.runs) == [hers] and list(shared.runs) == [only]
            assert (await job(scheduler, again)).node == "own-shared"
        finally:
            await shared.stop()
    finally:
        await alices.stop()
