"""Arrays and retries in the scheduler, against real NATS JetStream and a real database, with fake nodes."""

import asyncio
import time

import pytest
from sqlalchemy import func, select

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.store.models import ArrayRow, JobRow, TransitionRow
from tests.support.fake_node import FakeNode, submit

pytestmark = pytest.mark.integration
S = v1.JobState


def spec(**kw):
    kw.setdefault("command", ["true"])
    return v1.JobSpec(expected_runtime=5.0, **kw)


async def array_row(scheduler, array_id):
    async with scheduler.sessions() as s:
        row = await s.get(ArrayRow, array_id)
        tasks = await s.scalar(select(func.count()).select_from(JobRow).where(JobRow.array_id == array_id))
        return row, tasks


async def history(scheduler, job_id):
    async with scheduler.sessions() as s:
        rows = await s.execute(
            select(TransitionRow).where(TransitionRow.job_id == job_id).order_by(TransitionRow.id)
        )
        return [(t.state, t.attempt, t.exit_code) for t in rows.scalars()]


async def attempt_sent(node, job_id, attempt, timeout=10.0):
    async with node.received:
        await asyncio.wait_for(
            node.received.wait_for(lambda: job_id in node.runs and node.runs[job_id].attempt >= attempt),
            timeout,
        )


async def command(bus, cmd, verb):
    await bus.publish(sj.cmd_subject(verb), cmd, msg_id=f"{cmd.job_id}-{verb}-{time.time()}")


async def test_an_array_is_one_row_and_its_tasks_are_made_as_parallelism_allows(scheduler, clean_bus, events):
    node = await FakeNode(clean_bus, "n1", slots=10).start()
    try:
        aid = await submit(
            clean_bus, spec(name="sweep", array=v1.ArraySpec(count=25, parallelism=4, start=1))
        )
        await events.wait_state(aid, "queued")
        await node.wait_runs(4)
        await asyncio.sleep(0.3)
        row, tasks = await array_row(scheduler, aid)
        assert (row.count, row.materialised, tasks) == (25, 4, 4)
        assert len(node.runs) == 4  # parallelism, not the node's 10 slots
        first = sorted(node.runs.values(), key=lambda r: r.array_index or 0)
        assert [(r.array_id, r.array_index, r.array_count) for r in first] == [
            (aid, i, 25) for i in (1, 2, 3, 4)
        ]
        assert first[0].spec.name == "sweep" and first[0].spec.array is None
        most = 0
        done: set[str] = set()
        while len(done) < 25:
            live = [j for j in node.runs if j not in done]
            most = max(most, len(live))
            for jid in live:
                await node.report(jid, "running")
                await node.report(jid, "finished", outcome=S.SUCCEEDED, exit_code=0)
                done.add(jid)
            await node.wait_runs(min(25, len(done) + 1), timeout=30)
        assert most <= 4
        assert sorted(r.array_index or 0 for r in node.runs.values()) == list(range(1, 26))
        await events.wait_state(aid, "succeeded")
        row, tasks = await array_row(scheduler, aid)
        assert row.materialised == 25 and tasks == 25 and row.ended_at is not None
        assert events.by_job[aid][-1].reason == "25 of 25 tasks succeeded"
    finally:
        await node.stop()


async def test_cancelling_an_array_cancels_its_tasks_and_makes_no_more(scheduler, clean_bus, events):
    node = await FakeNode(clean_bus, "n1", slots=1).start()
    try:
        aid = await submit(clean_bus, spec(array=v1.ArraySpec(count=1000, parallelism=3)))
        await node.wait_runs(1)
        running = next(iter(node.runs))
        await node.report(running, "running")
        await asyncio.sleep(0.3)
        # two rounds of the node's one slot, fewer than the parallelism of 3
        assert (await array_row(scheduler, aid))[0].materialised == 2
        await command(clean_bus, v1.CancelJob(job_id=aid), "cancel")
        stop = await node.wait_cancel(running)
        assert stop.outcome is S.CANCELLED
        await node.report(running, "finished", outcome=S.CANCELLED, exit_code=143)
        await events.wait_state(aid, "cancelled")
        row, tasks = await array_row(scheduler, aid)
        assert row.cancelled and row.materialised == 2 and tasks == 2 and row.ended_at is not None
        async with scheduler.sessions() as s:
            states = (await s.execute(select(JobRow.state).where(JobRow.array_id == aid))).scalars().all()
        assert sorted(states) == ["cancelled"] * 2
        assert len(node.runs) == 1
    finally:
        await node.stop()


async def test_holding_an_array_stops_new_tasks_and_release_goes_on(scheduler, clean_bus, events):
    node = await FakeNode(clean_bus, "n1", slots=1).start()
    try:
        aid = await submit(clean_bus, spec(array=v1.ArraySpec(count=5, parallelism=2)))
        await node.wait_runs(1)
        first = next(iter(node.runs))
        await command(clean_bus, v1.HoldJob(job_id=aid), "hold")
        await asyncio.sleep(0.5)
        async with scheduler.sessions() as s:
            states = dict(
                (await s.execute(select(JobRow.id, JobRow.state).where(JobRow.array_id == aid))).all()
            )
        assert sorted(states.values()) == [
            "held",
            "starting",
        ]  # the waiting task is held, the started one not
        await node.report(first, "finished", outcome=S.SUCCEEDED, exit_code=0)
        await asyncio.sleep(0.5)
        assert len(node.runs) == 1 and (await array_row(scheduler, aid))[0].materialised == 2
        await command(clean_bus, v1.ReleaseJob(job_id=aid), "release")
        for n in range(2, 6):
            await node.wait_runs(n)
            jid = [j for j in node.runs if j != first][-1]
            await node.report(jid, "finished", outcome=S.SUCCEEDED, exit_code=0)
            first = jid
        await events.wait_state(aid, "succeeded")
    finally:
        await node.stop()


async def test_a_failed_attempt_is_retried_after_a_doubling_backoff_and_shown(scheduler, clean_bus, events):
    node = await FakeNode(clean_bus, "n1", slots=1).start()
    try:
        jid = await submit(clean_bus, spec(retry=v1.RetrySpec(attempts=3, backoff=0.6)))
        await node.wait_runs(1)
        began = [time.monotonic()]
        for attempt, gap in ((1, 0.6), (2, 1.2)):
            assert node.runs[jid].attempt == attempt
            await node.report(jid, "running")
            ended = time.monotonic()
            await node.report(jid, "finished", outcome=S.FAILED, exit_code=attempt, reason="boom")
            await attempt_sent(node, jid, attempt + 1)
            assert time.monotonic() - ended >= gap - 0.05  # waited out the backoff
            began.append(time.monotonic())
        await node.report(jid, "running")
        await node.report(jid, "finished", outcome=S.SUCCEEDED, exit_code=0)
        await events.wait_state(jid, "succeeded")
        # no failed event: a follower of the job sees it queued again, never over
        assert "failed" not in events.states(jid)
        assert events.by_job[jid][3].reason.startswith(
            "attempt 1 failed (exit code 1); retry 2 of 3 in 0.6 s"
        )
        ends = [
            (state, attempt, code)
            for state, attempt, code in await history(scheduler, jid)
            if code is not None
        ]
        assert ends == [("failed", 1, 1), ("failed", 2, 2), ("succeeded", 3, 0)]
    finally:
        await node.stop()


async def test_exit_codes_limit_which_failures_are_retried(scheduler, clean_bus, events):
    node = await FakeNode(clean_bus, "n1", slots=1).start()
    try:
        jid = await submit(clean_bus, spec(retry=v1.RetrySpec(attempts=3, on=["failed"], exit_codes=[75])))
        await node.wait_runs(1)
        await node.report(jid, "finished", outcome=S.FAILED, exit_code=75)
        await attempt_sent(node, jid, 2)
        await node.report(jid, "finished", outcome=S.FAILED, exit_code=1)
        await events.wait_state(jid, "failed")
        await asyncio.sleep(0.3)
        assert events.states(jid)[-1] == "failed" and node.runs[jid].attempt == 2
    finally:
        await node.stop()


async def test_a_retry_keeps_its_place_before_jobs_submitted_after_it(scheduler, clean_bus, events):
    node = await FakeNode(clean_bus, "n1", slots=1).start()
    try:
        first = await submit(clean_bus, spec(retry=v1.RetrySpec(attempts=2)))
        later = [await submit(clean_bus, spec()) for _ in range(3)]
        await node.wait_runs(1)
        await asyncio.sleep(0.3)
        await node.report(first, "finished", outcome=S.FAILED, exit_code=1)
        await attempt_sent(node, first, 2)
        assert list(node.runs) == [first] and all(events.states(j) == ["queued"] for j in later)
    finally:
        await node.stop()


async def test_a_requeued_job_gets_its_attempts_again_and_no_more(scheduler, clean_bus, events):
    node = await FakeNode(clean_bus, "n1", slots=1).start()
    try:
        jid = await submit(clean_bus, spec(retry=v1.RetrySpec(attempts=2, on=["failed"])))
        for attempt in (1, 2):
            await attempt_sent(node, jid, attempt)
            await node.report(jid, "finished", outcome=S.FAILED, exit_code=1)
        await events.wait_state(jid, "failed")
        await command(clean_bus, v1.RequeueJob(job_id=jid), "requeue")
        for attempt in (3, 4):  # two attempts again: the retry budget counts from the requeue
            await attempt_sent(node, jid, attempt)
            await node.report(jid, "finished", outcome=S.FAILED, exit_code=1)
        await events.wait(lambda: events.states(jid).count("failed") == 2)
        await asyncio.sleep(0.5)
        async with scheduler.sessions() as s:
            row = await s.get(JobRow, jid)
        assert (row.state, row.attempt, row.max_attempts) == ("failed", 4, 4)
        assert node.runs[jid].attempt == 4  # no fifth
    finally:
        await node.stop()


async def test_a_failed_task_requeued_while_its_array_runs_lets_it_succeed(scheduler, clean_bus, events):
    node = await FakeNode(clean_bus, "n1", slots=3).start()
    try:
        aid = await submit(clean_bus, spec(array=v1.ArraySpec(count=3)))
        await node.wait_runs(3)
        first, *others = sorted(node.runs, key=lambda j: node.runs[j].array_index or 0)
        await node.report(first, "finished", outcome=S.FAILED, exit_code=1)
        await events.wait_state(first, "failed")
        await command(clean_bus, v1.RequeueJob(job_id=first), "requeue")
        await attempt_sent(node, first, 2)
        for jid in (first, *others):
            await node.report(jid, "finished", outcome=S.SUCCEEDED, exit_code=0)
        await events.wait_state(aid, "succeeded")
        assert events.by_job[aid][-1].reason == "3 of 3 tasks succeeded"
    finally:
        await node.stop()


async def test_an_array_carries_on_after_a_scheduler_restart(scheduler, clean_bus, events, nats_url):
    from jobwire.runtime.settings import BusSettings
    from jobwire.scheduler.service import Scheduler

    node = await FakeNode(clean_bus, "n1", slots=2).start()
    try:
        aid = await submit(clean_bus, spec(array=v1.ArraySpec(count=6, parallelism=2)))
        await node.wait_runs(2)
        failed = next(j for j, r in node.runs.items() if r.array_index == 0)
        await node.report(failed, "finished", outcome=S.FAILED, exit_code=1)
        await events.wait_state(failed, "failed")
        await scheduler.stop()
        again = Scheduler(scheduler.settings, BusSettings(nats_url=nats_url))
        await again.start()
        try:
            while len(node.runs) < 6 or any((j, r.attempt) in node.running for j, r in node.runs.items()):
                live = [j for j, r in node.runs.items() if (j, r.attempt) in node.running]
                for jid in live:
                    await node.report(jid, "finished", outcome=S.SUCCEEDED, exit_code=0)
                await node.wait_runs(min(6, len(node.runs) + 1))
            await events.wait_state(aid, "failed")
            assert events.by_job[aid][-1].reason == "5 of 6 tasks succeeded"
            assert sorted(r.array_index or 0 for r in node.runs.values()) == list(range(6))
        finally:
            await again.stop()
    finally:
        await node.stop()


async def test_an_array_makes_tasks_only_within_its_owners_max_active(scheduler, clean_bus, events):
    """An array is admitted as one submit; its tasks never take alice past max_active (3: one plain job
    of hers runs, so two tasks at most), while bob, without a quota, gets the node's window."""
    from jobwire.store.models import QuotaRow

    async with scheduler.sessions() as s, s.begin():
        s.add(QuotaRow(owner="alice", max_active=3))
    node = await FakeNode(clean_bus, "n1", slots=10, cpus=16).start()

    async def submit_as(owner, job_spec):
        jid = v1.new_job_id()
        cmd = v1.SubmitJob(job_id=jid, spec=job_spec, owner=owner)
        await clean_bus.publish(sj.cmd_subject("submit"), cmd, msg_id=jid)
        return jid

    try:
        plain = await submit_as("alice", spec())
        await node.wait_runs(1)
        aid = await submit_as("alice", spec(array=v1.ArraySpec(count=8)))
        await node.wait_runs(3)
        await asyncio.sleep(0.5)
        assert (await array_row(scheduler, aid))[1] == 2 and len(node.runs) == 3
        bid = await submit_as("bob", spec(array=v1.ArraySpec(count=4)))
        await node.wait_runs(7)  # bob's four: no quota of his
        await node.report(plain, "finished", outcome=S.SUCCEEDED, exit_code=0)
        await node.wait_runs(8)  # alice's plain job ended: room for a third task, no more
        await asyncio.sleep(0.5)
        assert (await array_row(scheduler, aid))[1] == 3
        most = 0
        while True:
            live = [j for j, r in node.runs.items() if (j, r.attempt) in node.running]
            mine = [j for j in live if node.runs[j].array_id == aid]
            most = max(most, len(mine))
            if not live:
                break
            for jid in live:
                await node.report(jid, "finished", outcome=S.SUCCEEDED, exit_code=0)
            await asyncio.sleep(0.4)
        await events.wait_state(aid, "succeeded")
        await events.wait_state(bid, "succeeded")
        assert most <= 3 and (await array_row(scheduler, aid))[1] == 8
    finally:
        await node.stop()


async def test_an_arrays_gpu_tasks_stay_within_its_owners_max_gpus(scheduler, clean_bus, events):
    from jobwire.store.models import QuotaRow

    async with scheduler.sessions() as s, s.begin():
        s.add(QuotaRow(owner="alice", max_gpus=2))
    node = await FakeNode(clean_bus, "g1", slots=8, cpus=16, gpus=8).start()
    try:
        aid = v1.new_job_id()
        job_spec = spec(resources=v1.Resources(gpus=1), array=v1.ArraySpec(count=5))
        cmd = v1.SubmitJob(job_id=aid, spec=job_spec, owner="alice")
        await clean_bus.publish(sj.cmd_subject("submit"), cmd, msg_id=aid)
        await node.wait_runs(2)
        await asyncio.sleep(0.5)
        assert len(node.runs) == 2 and (await array_row(scheduler, aid))[1] == 2
        done = 0
        while done < 5:
            live = [j for j, r in node.runs.items() if (j, r.attempt) in node.running]
            assert len(live) <= 2
            for jid in live:
                await node.report(jid, "finished", outcome=S.SUCCEEDED, exit_code=0)
                done += 1
            if done < 5:
                await node.wait_runs(min(5, done + 1))
                await asyncio.sleep(0.3)
        await events.wait_state(aid, "succeeded")
    finally:
        await node.stop()


async def test_a_timeout_is_retried_and_a_loss_not_named_in_on_is_not(scheduler, clean_bus, events):
    node = await FakeNode(clean_bus, "n1", slots=2).start()
    try:
        timed = await submit(clean_bus, spec(retry=v1.RetrySpec(attempts=2, on=["timed_out"])))
        lost = await submit(clean_bus, spec(retry=v1.RetrySpec(attempts=2, on=["failed"])))
        await node.wait_runs(2)
        await node.report(timed, "finished", outcome=S.TIMED_OUT, reason="walltime exceeded")
        await attempt_sent(node, timed, 2)
        assert events.by_job[timed][-2].reason.startswith("attempt 1 timed out; retry 2 of 2")
        await node.report(lost, "finished", outcome=S.LOST, reason="gone")
        await events.wait_state(lost, "lost")
        await asyncio.sleep(0.5)
        assert events.states(lost)[-1] == "lost" and node.runs[lost].attempt == 1
    finally:
        await node.stop()


async def test_a_backoff_outlasts_a_scheduler_restart(scheduler, clean_bus, events, nats_url):
    from jobwire.runtime.settings import BusSettings
    from jobwire.scheduler.service import Scheduler

    node = await FakeNode(clean_bus, "n1", slots=1).start()
    try:
        jid = await submit(clean_bus, spec(retry=v1.RetrySpec(attempts=2, backoff=3)))
        await node.wait_runs(1)
        failed_at = time.monotonic()
        await node.report(jid, "finished", outcome=S.FAILED, exit_code=1)
        await events.wait(lambda: events.states(jid)[-1] == "queued")
        await scheduler.stop()
        again = Scheduler(scheduler.settings, BusSettings(nats_url=nats_url))
        await again.start()
        try:
            await attempt_sent(node, jid, 2, timeout=15)
            assert time.monotonic() - failed_at >= 2.9  # the restarted scheduler kept the backoff
        finally:
            await again.stop()
    finally:
        await node.stop()


async def test_a_native_array_node_gets_the_tasks_together_one_chunk_at_a_time(scheduler, clean_bus, events):
    """A node that runs arrays natively (an HPC executor) is sent one round of its slots as ONE
    RunArray carrying the parallelism, which its batch system enforces; the next chunk only once
    every task of the previous one ended, so one native job of the array runs at a time."""
    node = await FakeNode(clean_bus, "hpc1", slots=10, cpus=64, native_arrays=True).start()
    try:
        # the scheduler knows the node first: an array made while no node is known starts with a
        # one-task round (nothing says it is native yet), which is right but not what this test counts
        deadline = time.monotonic() + 30
        while not ((n := scheduler.cluster.nodes.get("hpc1")) is not None and n.up):
            assert time.monotonic() < deadline, "the scheduler never saw node hpc1"
            await asyncio.sleep(0.05)
        aid = await submit(clean_bus, spec(node="hpc1", array=v1.ArraySpec(count=25, parallelism=4)))
        await events.wait_state(aid, "queued")
        chunks = []
        for size in (10, 10, 5):
            await node.wait_runs(len(node.runs) + size if chunks else size)
            await asyncio.sleep(0.5)  # nothing more arrives while the chunk is alive
            assert len(node.arrays) == len(chunks) + 1, [len(a.runs) for a in node.arrays]
            chunk = node.arrays[-1]
            assert chunk.job_id == aid and len(chunk.runs) == size
            assert {(r.array_parallelism, r.array_count, r.array_id) for r in chunk.runs} == {(4, 25, aid)}
            chunks.append(sorted(r.array_index or 0 for r in chunk.runs))
            for run in chunk.runs[:-1]:
                await node.report(run.job_id, "finished", outcome=S.SUCCEEDED, exit_code=0)
            await asyncio.sleep(0.5)
            assert len(node.arrays) == len(chunks)  # one task of the chunk still alive: no next chunk
            await node.report(chunk.runs[-1].job_id, "finished", outcome=S.SUCCEEDED, exit_code=0)
        assert chunks == [list(range(0, 10)), list(range(10, 20)), list(range(20, 25))]
        await events.wait_state(aid, "succeeded")
        assert len(node.runs) == 25
    finally:
        await node.stop()
