"""An executor that runs jobs as its own account serves one owner: another owner's job never runs."""

from __future__ import annotations

import sys

import pytest

from jobwire.contracts.v1 import JobSpec, JobState, RunJob, new_job_id
from jobwire.contracts.v1 import subjects as sj
from jobwire.execution import ExecutorService

pytestmark = pytest.mark.integration


async def _run_as(harness, node: str, owner: str, marker: str) -> str:
    job_id = new_job_id()
    spec = JobSpec(command=[sys.executable, "-c", f"open({marker!r}, 'w').write('ran')"])
    msg = RunJob(job_id=job_id, attempt=1, node=node, spec=spec, owner=owner)
    await harness.bus.publish(sj.exec_subject(node, "run"), msg, msg_id=f"{job_id}:1:run")
    return job_id


async def test_another_owners_job_is_refused_and_never_runs(harness, tmp_path):
    svc = await harness.executor(owner="alice")
    bob = await _run_as(harness, svc.node, "bob", str(tmp_path / "bob-ran"))
    alice = await _run_as(harness, svc.node, "alice", str(tmp_path / "alice-ran"))

    refused = await harness.wait(bob, "finished")
    assert refused.outcome is JobState.FAILED
    assert "for owner 'alice' only" in refused.reason and "'bob'" in refused.reason
    assert not (tmp_path / "bob-ran").exists()
    assert not harness.of(bob, "running")

    done = await harness.wait(alice, "finished")
    assert done.outcome is JobState.SUCCEEDED
    assert (tmp_path / "alice-ran").read_text() == "ran"


async def test_a_run_as_mode_not_implemented_refuses_the_start(harness):
    for mode in ("owner", "fixed:nobody"):
        with pytest.raises(ValueError, match="not supported yet by the 'local' backend"):
            ExecutorService(harness.settings(run_as=mode))
