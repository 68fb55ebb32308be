"""Dependencies and workflows in the scheduler, against real NATS and a real database with fake nodes:
jobs wait until what they need is met, run in order, are cancelled at once with the reason when it can
no longer be met, and a restart mid-DAG loses nothing."""

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, select

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime.settings import BusSettings
from jobwire.scheduler.service import Scheduler
from jobwire.store.models import JobRow, WorkflowRow
from tests.support.fake_node import FakeNode, submit

pytestmark = pytest.mark.integration
S = v1.JobState


def spec(name=None, after=(), when="succeeded"):
    return v1.JobSpec(
        name=name,
        command=["true"],
        expected_runtime=10.0,
        after=[v1.Dependency(job=a, when=v1.When(when)) for a in after],
    )


async def submit_diamond(bus):
    """a -> b, c -> d as one workflow; returns {name: id}."""
    ids = {n: v1.new_job_id() for n in "abcd"}
    after = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
    at = datetime.now(UTC)
    jobs = [
        v1.SubmitJob(job_id=ids[n], spec=spec(n, [ids[p] for p in after[n]]), submitted_at=at) for n in "abcd"
    ]
    wf = v1.SubmitWorkflow(workflow_id=v1.new_job_id(), name="diamond", jobs=jobs, submitted_at=at)
    await bus.publish(sj.cmd_subject("submit_workflow"), wf, msg_id=wf.workflow_id)
    return wf.workflow_id, ids


async def job(scheduler, job_id):
    async with scheduler.sessions() as s:
        return await s.get(JobRow, job_id)


async def finish(node, events, job_id, outcome=S.SUCCEEDED):
    await node.report(job_id, "running")
    await node.report(job_id, "finished", outcome=outcome, exit_code=0 if outcome is S.SUCCEEDED else 1)
    await events.wait_state(job_id, outcome.value)


async def test_a_diamond_runs_in_order_and_waiting_jobs_say_for_what(scheduler, clean_bus, events):
    node = await FakeNode(clean_bus, "n1", slots=4).start()
    try:
        wf_id, ids = await submit_diamond(clean_bus)
        await node.wait_runs(1)
        await asyncio.sleep(0.3)
        assert set(node.runs) == {ids["a"]}  # b, c, d wait although three slots are free
        b, d = await job(scheduler, ids["b"]), await job(scheduler, ids["d"])
        assert b.state == "queued" and b.node is None and b.reason == f"waiting for {ids['a']} to succeed"
        assert d.reason == f"waiting for {ids['b']} to succeed and {ids['c']} to succeed"
        async with scheduler.sessions() as s:
            stored = await s.get(WorkflowRow, wf_id)
        assert stored.name == "diamond" and v1.decode(stored.jobs, dict[str, str]) == ids

        await finish(node, events, ids["a"])
        await node.wait_runs(3)
        await asyncio.sleep(0.3)
        assert set(node.runs) == {ids["a"], ids["b"], ids["c"]}
        await finish(node, events, ids["b"])
        await asyncio.sleep(0.3)
        d = await job(scheduler, ids["d"])
        assert ids["d"] not in node.runs and d.reason == f"waiting for {ids['c']} to succeed"
        await finish(node, events, ids["c"])
        await node.wait_runs(4)
        await finish(node, events, ids["d"])
        assert events.states(ids["d"]) == ["queued", "starting", "running", "succeeded"]
    finally:
        await node.stop()


async def test_a_failed_root_cancels_the_whole_dag_at_once_with_reasons(scheduler, clean_bus, events):
    node = await FakeNode(clean_bus, "n1", slots=4).start()
    try:
        _, ids = await submit_diamond(clean_bus)
        await node.wait_runs(1)
        await finish(node, events, ids["a"], S.FAILED)
        for n in "bcd":
            await events.wait_state(ids[n], "cancelled", timeout=20)
        assert (await job(scheduler, ids["b"])).reason == f"dependency {ids['a']} failed"
        assert (await job(scheduler, ids["c"])).reason == f"dependency {ids['a']} failed"
        d = await job(scheduler, ids["d"])
        assert d.reason in (f"dependency {ids['b']} was cancelled", f"dependency {ids['c']} was cancelled")
        assert d.ended_at is not None and set(node.runs) == {ids["a"]}
        assert events.states(ids["d"]) == ["queued", "cancelled"]
    finally:
        await node.stop()


async def test_dependencies_already_decided_at_submit(scheduler, clean_bus, events):
    node = await FakeNode(clean_bus, "n1", slots=4).start()
    try:
        ok, bad = await submit(clean_bus, spec()), await submit(clean_bus, spec())
        await node.wait_runs(2)
        await finish(node, events, ok)
        await finish(node, events, bad, S.FAILED)
        runs = await submit(clean_bus, spec(after=[ok]))
        on_failure = await submit(clean_bus, spec(after=[bad], when="failed"))
        anyway = await submit(clean_bus, spec(after=[ok, bad], when="finished"))
        doomed = await submit(clean_bus, spec(after=[bad]))
        wrong_way = await submit(clean_bus, spec(after=[ok], when="failed"))
        ghost = await submit(clean_bus, spec(after=[v1.new_job_id()]))
        await node.wait_runs(5)
        assert {runs, on_failure, anyway} <= set(node.runs)
        for jid in (doomed, wrong_way, ghost):
            await events.wait_state(jid, "cancelled")
        assert (await job(scheduler, doomed)).reason == f"dependency {bad} failed"
        assert (await job(scheduler, wrong_way)).reason.startswith(f"dependency {ok} succeeded;")
        assert (await job(scheduler, ghost)).reason.endswith("was deleted before it ended")
    finally:
        await node.stop()


async def test_hold_release_cancel_and_delete_while_waiting(scheduler, clean_bus, events):
    node = await FakeNode(clean_bus, "n1", slots=4).start()
    try:
        root = await submit(clean_bus, spec())
        held = await submit(clean_bus, spec(after=[root]))
        cancelled = await submit(clean_bus, spec(after=[root]))
        await node.wait_runs(1)
        await events.wait_state(held, "queued")
        await clean_bus.publish(sj.cmd_subject("hold"), v1.HoldJob(job_id=held), msg_id=f"{held}:hold")
        await clean_bus.publish(
            sj.cmd_subject("cancel"), v1.CancelJob(job_id=cancelled), msg_id=f"{cancelled}:c"
        )
        await events.wait_state(held, "held")
        await events.wait_state(cancelled, "cancelled")
        await clean_bus.publish(sj.cmd_subject("release"), v1.ReleaseJob(job_id=held), msg_id=f"{held}:rel")
        await events.wait(lambda: events.states(held) == ["queued", "held", "queued"])
        released = await job(scheduler, held)
        assert released.node is None and released.reason == f"released; waiting for {root} to succeed"
        await finish(node, events, root)
        await node.wait_runs(2)
        assert held in node.runs and cancelled not in node.runs

        # a dependency deleted before it ended cancels its dependents
        gone = await submit(clean_bus, spec(after=[v1.new_job_id()], when="finished"))
        await events.wait_state(gone, "cancelled")
        first = await submit(clean_bus, spec())
        await node.wait_runs(3)
        second = await submit(clean_bus, spec(after=[first]))
        third = await submit(clean_bus, spec(after=[second]))
        await events.wait_state(third, "queued")
        await clean_bus.publish(sj.cmd_subject("delete"), v1.DeleteJob(job_id=second), msg_id=f"{second}:d")
        await events.wait_state(third, "cancelled")
        assert (await job(scheduler, third)).reason == f"dependency {second} was deleted before it ended"
    finally:
        await node.stop()


async def test_a_restart_mid_dag_loses_nothing(scheduler, clean_bus, events, nats_url):
    node = await FakeNode(clean_bus, "n1", slots=4).start()
    try:
        _, ids = await submit_diamond(clean_bus)
        await node.wait_runs(1)
        await node.report(ids["a"], "running")
        await events.wait_state(ids["a"], "running")
        await scheduler.stop()
        again = Scheduler(scheduler.settings, BusSettings(nats_url=nats_url))
        await again.start()  # rebuilt from the database: b, c, d wait again
        try:
            assert again.cluster.waits.unmet[ids["d"]] == {ids["b"]: v1.When.SUCCEEDED, ids["c"]: "succeeded"}
            await finish(node, events, ids["a"])
            await node.wait_runs(3)
            await finish(node, events, ids["b"])
            await again.stop()
            await node.report(ids["c"], "running")  # c ends while no scheduler runs
            await node.report(ids["c"], "finished", outcome=S.SUCCEEDED, exit_code=0)
            third = Scheduler(scheduler.settings, BusSettings(nats_url=nats_url))
            await third.start()
            try:
                await node.wait_runs(4)
                await finish(node, events, ids["d"])
            finally:
                await third.stop()
        finally:
            await again.stop()
    finally:
        await node.stop()


async def test_dependents_of_a_batch_of_ended_jobs_are_loaded_in_one_query(scheduler, clean_bus, events):
    """100 jobs wait on one; when it ends, the scheduler reads their rows in one statement, not 100."""
    node = await FakeNode(clean_bus, "n1", slots=1).start()
    try:
        root = await submit(clean_bus, spec())
        waiting = [v1.new_job_id() for _ in range(100)]
        at = datetime.now(UTC)
        batch = v1.SubmitJobs(
            batch_id=v1.new_job_id(),
            jobs=[v1.SubmitJob(job_id=j, spec=spec(after=[root]), submitted_at=at) for j in waiting],
        )
        await clean_bus.publish(sj.cmd_subject("submit_batch"), batch, msg_id=batch.batch_id)
        await events.wait_state(waiting[-1], "queued")
        await node.wait_runs(1)
        await node.report(root, "running")
        await events.wait_state(root, "running")
        selects: list[str] = []

        def count(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
            if statement.lstrip().upper().startswith("SELECT") and "FROM jobs" in statement:
                selects.append(statement)

        engine = scheduler.engine.sync_engine
        event.listen(engine, "before_cursor_execute", count)
        try:
            await node.report(root, "finished", outcome=S.SUCCEEDED, exit_code=0)
            await node.wait_runs(2)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert len(selects) <= 6, selects  # the report's job, dispatch candidates, the 100 dependents
        async with scheduler.sessions() as s:
            placed = (await s.scalars(select(JobRow.node).where(JobRow.id.in_(waiting)))).all()
        assert placed == ["n1"] * 100
    finally:
        await node.stop()


async def test_a_job_after_an_array_waits_for_all_its_tasks(scheduler, clean_bus, events, nats_url):
    node = await FakeNode(clean_bus, "n1", slots=8).start()
    try:
        arr = await submit(clean_bus, v1.JobSpec(command=["true"], array=v1.ArraySpec(count=3)))
        await node.wait_runs(3)
        ok = await submit(clean_bus, spec(after=[arr]))
        on_failure = await submit(clean_bus, spec(after=[arr], when="failed"))
        await events.wait_state(on_failure, "queued")
        assert (await job(scheduler, ok)).reason == f"waiting for {arr} to succeed"
        tasks = [v1.array_task_id(arr, i) for i in range(3)]
        await finish(node, events, tasks[0])
        await scheduler.stop()  # the wait survives a restart while the array is open
        again = Scheduler(scheduler.settings, BusSettings(nats_url=nats_url))
        await again.start()
        try:
            assert again.cluster.waits.unmet[ok] == {arr: v1.When.SUCCEEDED}
            await finish(node, events, tasks[1])
            await asyncio.sleep(0.3)
            assert ok not in node.runs  # one task still runs
            await finish(node, events, tasks[2])
            await node.wait_runs(4)
            assert ok in node.runs
            await events.wait_state(on_failure, "cancelled")
            assert (await job(again, on_failure)).reason.startswith(f"dependency {arr} succeeded;")
            later = await submit(clean_bus, spec(after=[arr]))  # the array ended before this submit
            await node.wait_runs(5)
            assert later in node.runs

            bad = await submit(clean_bus, v1.JobSpec(command=["true"], array=v1.ArraySpec(count=2)))
            doomed = await submit(clean_bus, spec(after=[bad]))
            await node.wait_runs(7)
            await finish(node, events, v1.array_task_id(bad, 0), S.FAILED)
            await finish(node, events, v1.array_task_id(bad, 1))
            await events.wait_state(doomed, "cancelled")
            assert (await job(again, doomed)).reason == f"dependency {bad} failed"
            late = await submit(clean_bus, spec(after=[bad], when="failed"))
            await node.wait_runs(8)
            assert late in node.runs
        finally:
            await again.stop()
    finally:
        await node.stop()


async def test_a_requeued_job_that_never_ran_waits_for_its_dependencies_again(scheduler, clean_bus, events):
    node = await FakeNode(clean_bus, "n1", slots=4).start()
    try:
        a = await submit(clean_bus, spec())
        b = await submit(clean_bus, spec(after=[a]))
        await node.wait_runs(1)
        await finish(node, events, a, S.FAILED)
        await events.wait_state(b, "cancelled")

        async def requeue(job_id, n):
            msg = v1.RequeueJob(job_id=job_id)
            await clean_bus.publish(sj.cmd_subject("requeue"), msg, msg_id=f"{job_id}:rq{n}")

        await requeue(b, 1)  # a still failed: b is cancelled again at once, never run
        await events.wait(lambda: events.states(b) == ["queued", "cancelled", "queued", "cancelled"])
        assert (await job(scheduler, b)).reason == f"dependency {a} failed" and b not in node.runs
        await requeue(a, 1)
        await node.wait_runs(1)
        await events.wait(lambda: events.states(a)[-1] == "starting")
        await requeue(b, 2)  # now b waits for a's new attempt
        await events.wait(lambda: len(events.states(b)) == 5)
        waiting = await job(scheduler, b)
        assert waiting.state == "queued" and waiting.reason == f"requeued by user; waiting for {a} to succeed"
        assert b not in node.runs
        await node.report(a, "running")
        await node.report(a, "finished", outcome=S.SUCCEEDED, exit_code=0, attempt=2)
        await events.wait_state(a, "succeeded")
        await node.wait_runs(2)
        assert b in node.runs
    finally:
        await node.stop()
