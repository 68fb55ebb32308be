"""Requeue (Slurm's ``scontrol requeue``): 409 at once for a job that has not run, else a command to
the scheduler answered once the job shows ``queued`` again (202 while its run is being stopped)."""

from __future__ import annotations

import pytest

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("state", ["queued", "held"])
async def test_requeue_of_a_job_that_has_not_run_is_409_and_publishes_nothing(gateway, seed, state):
    job_id = await seed.job(state=state)
    r = await gateway.post(f"/v1/jobs/{job_id}/requeue")
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["type"] == "urn:jobwire:problem:cannot-requeue"
    assert state in body["detail"] and "running and finished" in body["detail"]
    assert await seed.commands() == []


@pytest.mark.parametrize("state", ["running", "succeeded", "failed", "cancelled", "timed_out"])
async def test_requeue_of_a_running_or_finished_job_is_sent_to_the_scheduler(gateway, seed, state):
    job_id = await seed.job(state=state, attempt=1, node="n1")
    r = await gateway.post(f"/v1/jobs/{job_id}/requeue")
    assert r.status_code == 202, r.text  # no scheduler here: the job is not queued yet
    assert r.json()["state"] == state
    [msg] = await seed.commands()
    assert msg.subject == sj.cmd_subject("requeue")
    command = v1.decode(msg.data, v1.Command)
    assert isinstance(command, v1.RequeueJob) and command.job_id == job_id
    round_ = len(r.json()["transitions"])  # a later requeue of the same job is a new message
    assert msg.headers[sj.MSG_ID_HEADER] == sj.command_msg_id(job_id, "requeue", round_)


async def test_requeue_of_an_unknown_job_is_404(gateway, seed):
    r = await gateway.post(f"/v1/jobs/{v1.new_job_id()}/requeue")
    assert r.status_code == 404
    assert await seed.commands() == []


async def test_requeue_of_a_finished_job_takes_a_place_in_its_owners_quota(gateway, seed):
    """A finished job requeued is active again: over alice's max_active it is a 429 and nothing is sent,
    whoever asks (here an admin); a running one is active already and takes no new place."""
    assert (await gateway.put("/v1/quotas/alice", json={"max_active": 1})).status_code == 200
    await seed.job(state="running", attempt=1, node="n1", owner="alice")
    done = await seed.job(state="failed", attempt=1, node="n1", owner="alice")
    r = await gateway.post(f"/v1/jobs/{done}/requeue")
    assert r.status_code == 429, r.text
    assert r.json()["limit"] == "max_active" and int(r.headers["retry-after"]) > 0
    assert await seed.commands() == []
    running = await seed.job(state="running", attempt=1, node="n1", owner="alice")
    assert (await gateway.post(f"/v1/jobs/{running}/requeue")).status_code == 202
    assert (await gateway.put("/v1/quotas/alice", json={"max_active": 3})).status_code == 200
    assert (await gateway.post(f"/v1/jobs/{done}/requeue")).status_code == 202
    assert len(await seed.commands()) == 2
