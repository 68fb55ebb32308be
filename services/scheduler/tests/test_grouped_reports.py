"""A node's grouped reports (``RunReports``) are applied in order as if each had come alone; a group
sent on another node's subject is dropped."""

import asyncio
from datetime import UTC, datetime

import pytest

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from tests.support.fake_node import FakeNode, submit

pytestmark = pytest.mark.integration
S = v1.JobState


def now() -> datetime:
    return datetime.now(UTC)


async def test_a_group_of_reports_moves_each_job_through_its_states_in_order(scheduler, clean_bus, events):
    node = await FakeNode(clean_bus, "n1", slots=2).start()
    try:
        jobs = [await submit(clean_bus, v1.JobSpec(command=["true"], expected_runtime=1)) for _ in range(2)]
        await node.wait_runs(2)
        reports: list[v1.Report] = []
        for jid in jobs:
            reports += [
                v1.RunStarting(job_id=jid, attempt=1, node="n1", at=now()),
                v1.RunRunning(job_id=jid, attempt=1, node="n1", at=now()),
                v1.RunFinished(job_id=jid, attempt=1, node="n1", at=now(), outcome=S.SUCCEEDED, exit_code=0),
            ]
        group = v1.RunReports(node="n1", reports=reports)
        await clean_bus.publish(sj.reports_subject("n1"), group, msg_id=f"group-{jobs[0]}")
        for jid in jobs:
            await events.wait_state(jid, "succeeded")
            assert events.states(jid) == ["queued", "starting", "running", "succeeded"]
    finally:
        await node.stop()


async def test_a_group_on_another_nodes_subject_is_dropped(scheduler, clean_bus, events):
    node = await FakeNode(clean_bus, "n1").start()
    try:
        jid = await submit(clean_bus, v1.JobSpec(command=["true"], expected_runtime=1))
        await node.wait_runs(1)
        end = v1.RunFinished(job_id=jid, attempt=1, node="n1", at=now(), outcome=S.FAILED, exit_code=1)
        # node n2 claiming n1's job ended: not on n1's subjects, so not n1 speaking
        await clean_bus.publish(
            sj.reports_subject("n2"), v1.RunReports(node="n1", reports=[end]), msg_id=f"x-{jid}"
        )
        await asyncio.sleep(1.0)
        assert events.states(jid) == ["queued", "starting"]
        await node.report(jid, "running")
        await events.wait_state(jid, "running")
    finally:
        await node.stop()
