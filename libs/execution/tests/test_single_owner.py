"""An executor that runs jobs as its own account serves one owner: another owner's job never runs."""

from __future__ import annotations

import os
import sys
import tempfile
from typing import ClassVar

import pytest

from jobwire.contracts.v1 import JobSpec, JobState, RunJob, new_job_id
from jobwire.contracts.v1 import subjects as sj
from jobwire.execution import ExecutorService
from jobwire.execution.local import LocalExecutor
from jobwire.runtime.settings import BusSettings

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


async def test_without_a_configured_owner_the_first_one_is_kept_across_restarts(harness, tmp_path):
    """``self`` and no JOBWIRE_EXECUTOR_OWNER (``make run`` on a shared machine): the first owner's
    jobs run; a second owner's are refused with what to configure, also after a restart."""
    svc = await harness.executor()
    first = await _run_as(harness, svc.node, "carol", str(tmp_path / "carol-ran"))
    assert (await harness.wait(first, "finished")).outcome is JobState.SUCCEEDED
    second = await _run_as(harness, svc.node, "dave", str(tmp_path / "dave-ran"))
    refused = await harness.wait(second, "finished")
    assert refused.outcome is JobState.FAILED and not (tmp_path / "dave-ran").exists()
    assert "serves owner 'carol'" in refused.reason and "JOBWIRE_EXECUTOR_RUN_AS=owner" in refused.reason

    await svc.stop()
    again = await harness.executor(svc.node)
    later = await _run_as(harness, again.node, "dave", str(tmp_path / "dave-ran"))
    assert "serves owner 'carol'" in (await harness.wait(later, "finished")).reason
    assert not (tmp_path / "dave-ran").exists()
    mine = await _run_as(harness, again.node, "carol", str(tmp_path / "carol-again"))
    assert (await harness.wait(mine, "finished")).outcome is JobState.SUCCEEDED


class SelfOnly(LocalExecutor):
    """A backend that does not implement run-as (as executor-ssh before it does)."""

    run_as_modes: ClassVar[frozenset[str]] = frozenset({"self"})


async def test_a_run_as_mode_a_backend_does_not_implement_refuses_the_start(harness):
    for mode in ("owner", "fixed:nobody"):
        settings = harness.settings(run_as=mode, root="/tmp")
        with pytest.raises(ValueError, match="not supported yet by the 'local' backend"):
            ExecutorService(settings, executor=SelfOnly(settings), bus_settings=BusSettings())


async def test_run_as_refuses_a_root_its_accounts_cannot_reach(harness, tmp_path):
    # pytest's base directory is 0700: no account could reach a job directory below it
    with pytest.raises(ValueError, match="cannot pass through"):
        ExecutorService(harness.settings(run_as="fixed:nobody"))
    # the root itself closed (mkdtemp makes it 0700) below an open /tmp
    closed = tempfile.mkdtemp(prefix="jw-closed-root-", dir="/tmp")
    try:
        with pytest.raises(ValueError, match=f"through {closed} .mode 700."):
            ExecutorService(harness.settings(run_as="fixed:nobody", root=closed))
    finally:
        os.rmdir(closed)
    with pytest.raises(ValueError, match="'Bad User' is not a valid user name"):
        ExecutorService(harness.settings(run_as="fixed:Bad User"))
