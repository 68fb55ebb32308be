"""Ranks of one gang on nodes that share one root (an NFS home, one Docker host's shared directory):
each rank's attempt directory is its own, so neither overwrites the other's run.json, pid or logs,
a repeated RunJob finds its own rank's attempt, and a restarted node adopts only its rank."""

from __future__ import annotations

import sys
import time

import msgspec
import pytest

from jobwire.contracts.v1 import Gang, JobSpec, JobState, RunJob, new_job_id
from jobwire.contracts.v1 import subjects as sj

pytestmark = pytest.mark.integration

RANK = 'import os, time; time.sleep(float(os.environ["NAP"])); print("rank", os.environ["RANK"])'


async def send_rank(harness, node: str, job: str, rank: int, nap: float, *, repeat: int = 0) -> None:
    spec = msgspec.convert({"command": [sys.executable, "-c", RANK], "env": {"NAP": str(nap)}}, JobSpec)
    gang = Gang(rank=rank, world_size=2, master_addr="127.0.0.1", master_port=29999, hosts=["a", "b"])
    msg = RunJob(job_id=job, attempt=1, node=node, spec=spec, gang=gang)
    await harness.bus.publish(sj.exec_subject(node, "run"), msg, msg_id=f"{job}:1:run:{rank}:{repeat}")


async def finished(harness, job: str, n: int, timeout: float = 20.0) -> dict:
    """The end reports of ``n`` ranks, by node."""
    deadline = time.monotonic() + timeout
    while len(harness.of(job, "finished")) < n:
        assert time.monotonic() < deadline, harness.reports
        await harness.settle(0.2)
    return {r.node: r for r in harness.of(job, "finished")}


async def test_two_ranks_on_one_shared_root_keep_their_own_directories(harness, tmp_path):
    shared = tmp_path / "shared"
    a = await harness.executor("rank-a", root=str(shared))
    b = await harness.executor("rank-b", root=str(shared))
    job = new_job_id()
    await send_rank(harness, a.node, job, 0, 0.3)
    await send_rank(harness, b.node, job, 1, 0.3)
    done = await finished(harness, job, 2)
    assert set(done) == {"rank-a", "rank-b"}, harness.reports
    assert all(r.outcome is JobState.SUCCEEDED for r in done.values()), done
    # rank 0 keeps the job's directory; rank 1's is named by its rank
    assert sorted(p.name for p in (shared / "jobs" / job).iterdir()) == ["1", "1-rank1"]
    assert sorted(p.name for p in (shared / ".executor" / "jobs" / job).iterdir()) == ["1", "1-rank1"]
    assert (shared / ".executor" / "jobs" / job / "1" / "stdout").read_text() == "rank 0\n"
    assert (shared / ".executor" / "jobs" / job / "1-rank1" / "stdout").read_text() == "rank 1\n"
    assert await harness.text(job, "stdout") == "rank 0\n"
    assert await harness.text(job, "stdout-rank1") == "rank 1\n"

    # a repeated RunJob for rank 1 finds rank 1's reported attempt (not rank 0's) and runs nothing
    seen = len(harness.reports)
    await send_rank(harness, b.node, job, 1, 0.3, repeat=1)
    await harness.settle(1.5)
    assert harness.reports[seen:] == []


async def test_a_restarted_node_adopts_its_own_rank_only(harness, tmp_path):
    shared = tmp_path / "shared"
    a = await harness.executor("adopt-a", root=str(shared))
    b = await harness.executor("adopt-b", root=str(shared))
    job = new_job_id()
    await send_rank(harness, a.node, job, 0, 0.2)
    await send_rank(harness, b.node, job, 1, 3.0)
    await harness.wait(job, "running")
    await b.stop()  # rank 1 runs on without its executor
    harness.services.remove(b)
    again = await harness.executor("adopt-b", root=str(shared))
    assert again.node == "adopt-b"
    done = await finished(harness, job, 2, timeout=30)
    assert set(done) == {"adopt-a", "adopt-b"}, harness.reports
    assert done["adopt-b"].outcome is JobState.SUCCEEDED, done["adopt-b"]
    assert await harness.text(job, "stdout-rank1") == "rank 1\n"
    assert len([r for r in harness.of(job, "finished") if r.node == "adopt-b"]) == 1
