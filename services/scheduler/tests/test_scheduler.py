"""The scheduler against real NATS JetStream and a real database (SQLite and PostgreSQL), with fake nodes."""

import asyncio
import gc
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime.settings import BusSettings
from jobwire.scheduler.service import Scheduler
from jobwire.scheduler.settings import SchedulerSettings
from jobwire.store.models import AuditRow, JobRow, TransitionRow
from tests.support.fake_node import FakeNode, submit

pytestmark = pytest.mark.integration
S = v1.JobState


def spec(runtime=10.0, **kw):
    kw.setdefault("command", ["true"])
    return v1.JobSpec(expected_runtime=runtime, **kw)


async def rows(scheduler, job_id):
    async with scheduler.sessions() as s:
        job = await s.get(JobRow, job_id)
        n = await s.scalar(
            select(func.count()).select_from(TransitionRow).where(TransitionRow.job_id == job_id)
        )
        return job, n


async def test_submit_dispatch_run_finish(scheduler, clean_bus, events):
    node = await FakeNode(clean_bus, "n1").start()
    try:
        jid = await submit(clean_bus, spec(name="hello"))
        await node.wait_runs(1)
        run = node.runs[jid]
        assert run.attempt == 1 and run.node == "n1" and run.spec.name == "hello" and run.timeout == 20.0
        await node.report(jid, "starting")
        await node.report(jid, "running")
        await node.report(jid, "finished", outcome=S.SUCCEEDED, exit_code=0, usage=v1.Usage(wall_seconds=1.0))
        await events.wait_state(jid, "succeeded")
        assert events.states(jid) == ["queued", "starting", "running", "succeeded"]
        job, n = await rows(scheduler, jid)
        assert job.state == "succeeded" and job.exit_code == 0 and job.node == "n1" and n == 4
        assert job.started_at and job.ended_at and job.started_at <= job.ended_at
    finally:
        await node.stop()


async def test_duplicate_submits_create_one_job(scheduler, clean_bus, events):
    jid = v1.new_job_id()
    for i in range(3):  # different msg ids defeat JetStream's de-duplication: the handler must be idempotent
        await clean_bus.publish(
            sj.cmd_subject("submit"), v1.SubmitJob(job_id=jid, spec=spec()), msg_id=f"{jid}-{i}"
        )
    await events.wait_state(jid, "queued")
    await asyncio.sleep(0.5)
    async with scheduler.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(JobRow).where(JobRow.id == jid)) == 1
    assert events.states(jid) == ["queued"]


async def test_a_carried_audit_record_is_one_row_with_its_job_however_often_the_submit_comes(
    scheduler, clean_bus, events
):
    """The gateway's record rides in the SubmitJob: written with the job, and once for a redelivery."""
    jid = v1.new_job_id()
    record = v1.AuditRecord(
        at=datetime.now(UTC), action="jobs.submit", method="POST", path="/v1/jobs", status=201, target=jid
    )
    for i in range(3):
        command = v1.SubmitJob(job_id=jid, spec=spec(), owner="alice", audit=record)
        await clean_bus.publish(sj.cmd_subject("submit"), command, msg_id=f"{jid}-{i}")
    await events.wait_state(jid, "queued")
    await asyncio.sleep(0.5)
    async with scheduler.sessions() as s:
        rows = (await s.execute(select(AuditRow.target, AuditRow.status, AuditRow.request))).all()
    assert [tuple(r) for r in rows] == [(jid, 201, jid)]


async def test_an_active_scheduler_keeps_its_started_heap_out_of_full_collections(
    clean_bus, nats_url, database_url
):
    """A full collection walked the whole started heap, stopping the batch loop for 150-190 ms under
    load: what exists once the scheduler is active is frozen, and given back when it stops."""
    sched = Scheduler(SchedulerSettings(database_url=database_url), BusSettings(nats_url=nats_url))
    await sched.start()
    try:
        assert sched.role == "active"
        assert gc.get_freeze_count() > 10_000
    finally:
        await sched.stop()
    assert gc.get_freeze_count() == 0


async def test_jobs_wait_for_a_node_and_queue_in_order(scheduler, clean_bus, events):
    ids = [await submit(clean_bus, spec(runtime=5)) for _ in range(3)]
    await events.wait(lambda: all(events.states(i) == ["queued"] for i in ids))
    node = await FakeNode(clean_bus, "late").start()
    try:
        await node.wait_runs(1)
        assert list(node.runs) == [ids[0]]  # one slot: the first submitted starts
        await asyncio.sleep(0.3)
        assert list(node.runs) == [ids[0]]
        await node.report(ids[0], "running")
        await node.report(ids[0], "finished", outcome=S.FAILED, exit_code=3, reason="exit code 3")
        await node.wait_runs(2)
        assert list(node.runs) == ids[:2]
        await events.wait_state(ids[0], "failed")
        assert events.by_job[ids[0]][-1].exit_code == 3
    finally:
        await node.stop()


async def test_least_queued_time_spreads_jobs_over_nodes(scheduler, clean_bus, events):
    a = await FakeNode(clean_bus, "a", slots=1).start()
    b = await FakeNode(clean_bus, "b", slots=1).start()
    try:
        await asyncio.sleep(0.4)  # both registered
        long_job = await submit(clean_bus, spec(runtime=100))
        await events.wait_state(long_job, "starting")
        first = (await rows(scheduler, long_job))[0].node
        other = "b" if first == "a" else "a"
        shorts = [await submit(clean_bus, spec(runtime=10)) for _ in range(4)]
        await events.wait(lambda: all(events.states(i) for i in shorts))
        await asyncio.sleep(0.3)
        nodes = {i: (await rows(scheduler, i))[0].node for i in shorts}
        # the node with 100 s running gets nothing while the other drains 10 s jobs faster
        assert set(nodes.values()) == {other}
        assert [scheduler.cluster.position(i) for i in shorts] == [None, 0, 1, 2]  # the first one runs
    finally:
        await a.stop()
        await b.stop()


async def test_cancel_queued_at_once_and_running_through_the_executor(scheduler, clean_bus, events):
    node = await FakeNode(clean_bus, "n1").start()
    try:
        running = await submit(clean_bus, spec())
        queued = await submit(clean_bus, spec())
        await node.wait_runs(1)
        await clean_bus.publish(
            sj.cmd_subject("cancel"), v1.CancelJob(job_id=queued), msg_id=f"{queued}:cancel"
        )
        await events.wait_state(queued, "cancelled")
        assert events.states(queued) == ["queued", "cancelled"]
        await node.report(running, "running")
        await clean_bus.publish(
            sj.cmd_subject("cancel"), v1.CancelJob(job_id=running), msg_id=f"{running}:cancel"
        )
        cancel = await node.wait_cancel(running)
        assert cancel.attempt == 1 and cancel.outcome is S.CANCELLED
        await node.report(running, "finished", outcome=S.CANCELLED, exit_code=143, reason="cancelled by user")
        await events.wait_state(running, "cancelled")
        assert queued not in node.runs  # a cancelled queued job never reaches an executor
    finally:
        await node.stop()


async def test_lost_node_requeues_its_jobs_elsewhere_and_stale_runs_are_stopped(scheduler, clean_bus, events):
    a = await FakeNode(clean_bus, "a", slots=1).start()
    try:
        retried = await submit(clean_bus, spec(max_attempts=2, node=None))
        once = await submit(clean_bus, spec(max_attempts=1))
        await a.wait_runs(1)
        await a.report(retried, "running")
        b = await FakeNode(clean_bus, "b", slots=1).start()
        await asyncio.sleep(0.3)
        a.beating = False  # node a vanishes
        await events.wait_state(retried, "lost")
        await events.wait(lambda: events.states(retried).count("starting") == 2)
        assert events.states(retried) == ["queued", "starting", "running", "lost", "queued", "starting"]
        await b.wait_runs(1)
        assert list(b.runs) == [retried] and b.runs[retried].attempt == 2
        job, _ = await rows(scheduler, once)
        # the queued job moved from a to b (b runs the retry first, so it waits in b's queue)
        assert job.node == "b"
        # node a comes back still running attempt 1: the scheduler stops that stale run
        a.beating = True
        cancel = await a.wait_cancel(retried)
        assert cancel.attempt == 1 and cancel.outcome is S.LOST
        # a stale report from attempt 1 changes nothing
        await a.report(retried, "finished", attempt=1, outcome=S.SUCCEEDED, exit_code=0)
        await asyncio.sleep(0.3)
        assert (await rows(scheduler, retried))[0].state == "starting"
        await b.stop()
    finally:
        await a.stop()


async def test_lost_without_attempts_left_stays_lost(scheduler, clean_bus, events):
    a = await FakeNode(clean_bus, "a").start()
    try:
        jid = await submit(clean_bus, spec(max_attempts=1))
        await a.wait_runs(1)
        a.beating = False
        await events.wait_state(jid, "lost")
        await asyncio.sleep(0.3)
        assert events.states(jid)[-1] == "lost"
        job, _ = await rows(scheduler, jid)
        assert job.state == "lost" and job.ended_at is not None
    finally:
        await a.stop()


async def test_timeout_backstop_when_the_executor_does_not_enforce_it(scheduler, clean_bus, events):
    a = await FakeNode(clean_bus, "a").start()
    try:
        jid = await submit(clean_bus, spec(resources=v1.Resources(walltime=0.5)))
        await a.wait_runs(1)
        await a.report(jid, "running")
        cancel = await a.wait_cancel(jid, timeout=20)
        assert cancel.outcome is S.TIMED_OUT
        await events.wait_state(jid, "timed_out", timeout=20)  # the fake never answers: the scheduler decides
    finally:
        await a.stop()


async def test_hold_and_release(scheduler, clean_bus, events):
    jid = await submit(clean_bus, spec())
    await events.wait_state(jid, "queued")
    await clean_bus.publish(sj.cmd_subject("hold"), v1.HoldJob(job_id=jid), msg_id=f"{jid}:hold")
    await events.wait_state(jid, "held")
    a = await FakeNode(clean_bus, "a").start()
    try:
        await asyncio.sleep(0.5)
        assert not a.runs  # held jobs do not start
        await clean_bus.publish(sj.cmd_subject("release"), v1.ReleaseJob(job_id=jid), msg_id=f"{jid}:release")
        await a.wait_runs(1)
        assert events.states(jid) == ["queued", "held", "queued", "starting"]
    finally:
        await a.stop()


async def test_delete_removes_the_job_and_announces_it(scheduler, clean_bus, events):
    jid = await submit(clean_bus, spec())
    await events.wait_state(jid, "queued")
    deleted = asyncio.get_running_loop().create_future()

    async def on_deleted(msg):
        deleted.set_result(msg)

    sub = await clean_bus.nc.subscribe(sj.event_subject(jid, "deleted"), cb=on_deleted)
    await clean_bus.publish(sj.cmd_subject("delete"), v1.DeleteJob(job_id=jid), msg_id=f"{jid}:delete")
    await asyncio.wait_for(deleted, 5)
    await sub.unsubscribe()
    job, n = await rows(scheduler, jid)
    assert job is None and n == 0


async def test_restart_carries_on_with_queued_and_running_jobs(
    scheduler, clean_bus, events, nats_url, database_url
):
    from jobwire.runtime.settings import BusSettings
    from jobwire.scheduler.service import Scheduler

    a = await FakeNode(clean_bus, "a").start()
    try:
        first = await submit(clean_bus, spec())
        second = await submit(clean_bus, spec())
        await a.wait_runs(1)
        await a.report(first, "running")
        await events.wait_state(first, "running")
        await scheduler.stop()
        await a.report(first, "finished", outcome=S.SUCCEEDED, exit_code=0)  # while no scheduler runs
        again = Scheduler(scheduler.settings, BusSettings(nats_url=nats_url))
        await again.start()
        try:
            await events.wait_state(first, "succeeded")
            await a.wait_runs(2)
            assert a.runs[second].attempt == 1
        finally:
            await again.stop()
    finally:
        await a.stop()


async def test_what_a_crashed_scheduler_fetched_is_redelivered_at_once(
    scheduler, clean_bus, events, nats_url
):
    from jobwire.runtime.settings import BusSettings
    from jobwire.scheduler.service import REPORT_CONSUMER, Scheduler

    a = await FakeNode(clean_bus, "a").start()
    try:
        jid = await submit(clean_bus, spec())
        await a.wait_runs(1)
        await a.report(jid, "running")
        await events.wait_state(jid, "running")
        await scheduler.stop()
        await a.report(jid, "finished", outcome=S.SUCCEEDED, exit_code=0)
        # play the crashed scheduler: it fetched the report and died before acking it
        held = await clean_bus.js.pull_subscribe(
            sj.REPORT_SUBJECTS, durable=REPORT_CONSUMER, stream=sj.REPORT_STREAM
        )
        assert len(await held.fetch(1, timeout=5)) == 1
        again = Scheduler(scheduler.settings, BusSettings(nats_url=nats_url))
        await again.start()
        try:
            await events.wait_state(jid, "succeeded", timeout=30)  # well before the 60 s ack wait
        finally:
            await again.stop()
    finally:
        await a.stop()


async def test_batch_job_waits_in_starting_is_held_and_released_on_its_node(scheduler, clean_bus, events):
    """A launched batch job stays `starting` with its batch system's reason, is held there and released
    (keeping its node slot all along), and its walltime only counts once it runs."""
    a = FakeNode(clean_bus, "cl", backend="hpc")
    a.capacity = v1.NodeCapacity(slots=1, cpus=4, hold=True)
    await a.start()
    try:
        jid = await submit(clean_bus, spec(resources=v1.Resources(walltime=0.3)))
        other = await submit(clean_bus, spec())
        await a.wait_runs(1)
        await a.report(jid, "starting", reason="pending in slurm: Resources", msg_id=f"{jid}:s1")
        await asyncio.sleep(1.0)  # well past walltime + grace: no backstop while it waits
        job, _ = await rows(scheduler, jid)
        assert (job.state, job.reason) == ("starting", "pending in slurm: Resources")
        assert not a.cancels

        await clean_bus.publish(sj.cmd_subject("hold"), v1.HoldJob(job_id=jid), msg_id=f"{jid}:hold")
        [hold] = await a.wait_holds(1)
        assert (hold.job_id, hold.attempt, hold.release) == (jid, 1, False)
        await a.report(jid, "starting", reason="held in slurm: JobHeldAdmin", held=True, msg_id=f"{jid}:s2")
        await events.wait_state(jid, "held")
        job, _ = await rows(scheduler, jid)
        assert job.reason == "held in slurm: JobHeldAdmin" and job.node == "cl"
        assert other not in a.runs  # the held batch job keeps its slot

        await clean_bus.publish(sj.cmd_subject("release"), v1.ReleaseJob(job_id=jid), msg_id=f"{jid}:rel")
        holds = await a.wait_holds(2)
        assert holds[1].release is True
        await a.report(jid, "starting", reason="pending in slurm: Priority", msg_id=f"{jid}:s3")
        await a.report(jid, "running")
        await events.wait_state(jid, "running")
        assert events.states(jid) == ["queued", "starting", "held", "starting", "running"]
        cancel = await a.wait_cancel(jid, timeout=20)  # now its walltime counts
        assert cancel.outcome is S.TIMED_OUT
    finally:
        await a.stop()


async def test_cancel_of_a_batch_job_held_on_its_node_stops_the_run(scheduler, clean_bus, events):
    a = FakeNode(clean_bus, "cl2", backend="hpc")
    a.capacity = v1.NodeCapacity(slots=1, cpus=4, hold=True)
    await a.start()
    try:
        jid = await submit(clean_bus, spec())
        await a.wait_runs(1)
        await a.report(jid, "starting", reason="held in sge: hqw", held=True, msg_id=f"{jid}:h1")
        await events.wait_state(jid, "held")
        await clean_bus.publish(sj.cmd_subject("cancel"), v1.CancelJob(job_id=jid), msg_id=f"{jid}:cancel")
        cancel = await a.wait_cancel(jid)
        assert cancel.outcome is S.CANCELLED
        await a.report(jid, "finished", outcome=S.CANCELLED, reason="cancelled by user")
        await events.wait_state(jid, "cancelled")
        assert events.states(jid) == ["queued", "starting", "held", "cancelled"]
    finally:
        await a.stop()


async def until(pred, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_requeue_runs_a_running_and_a_finished_job_again_as_new_attempts(scheduler, clean_bus, events):
    node = await FakeNode(clean_bus, "n1", slots=2).start()
    try:
        running = await submit(clean_bus, spec())
        done = await submit(clean_bus, spec())
        await node.wait_runs(2)
        await node.report(running, "running")
        await node.report(done, "finished", outcome=S.SUCCEEDED, exit_code=0)
        await events.wait_state(done, "succeeded")
        # a finished job: queued again at once, then dispatched as attempt 2
        await clean_bus.publish(sj.cmd_subject("requeue"), v1.RequeueJob(job_id=done), msg_id=f"{done}:rq")
        await events.wait(lambda: events.states(done).count("starting") == 2)
        assert events.states(done) == ["queued", "starting", "succeeded", "queued", "starting"]
        await until(lambda: node.runs[done].attempt == 2)
        job, _ = await rows(scheduler, done)
        assert job.ended_at is None and job.exit_code is None
        # a running job: stopped through its executor with "queued" as the outcome, then run again
        await clean_bus.publish(
            sj.cmd_subject("requeue"), v1.RequeueJob(job_id=running), msg_id=f"{running}:rq"
        )
        stop = await node.wait_cancel(running)
        assert (stop.attempt, stop.outcome) == (1, S.QUEUED)
        await node.report(running, "finished", attempt=1, outcome=S.QUEUED, exit_code=143, reason="requeued")
        await events.wait(lambda: events.states(running).count("starting") == 2)
        assert events.states(running) == ["queued", "starting", "running", "queued", "starting"]
        await until(lambda: node.runs[running].attempt == 2)
    finally:
        await node.stop()
