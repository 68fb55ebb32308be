"""Faithful batch states, hold/release and no double submit, on the real SLURM 22.05 and SGE 8.1.9.

Through the stack: a job the batch system cannot start yet (a blocker fills the node) is `starting`
with the batch system's reason, not `running`; held and released through the REST routes in the batch
system; running and done once the node is free. Against the executor itself: a submit cut short by a
crash before the batch id was written is found again by name, not submitted twice.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from jobwire.contracts.v1 import JobSpec, RunJob, new_job_id
from jobwire.execution.hpc.base import BatchRequest
from jobwire.execution.settings import ExecutorSettings
from jobwire.execution.transport.local import LocalTransport
from jobwire.executor_hpc.executor import BATCH_ID, SUBMITTING, HpcExecutor
from jobwire.executor_hpc.schedulers.sge import Sge
from jobwire.executor_hpc.schedulers.slurm import Slurm
from jobwire.executor_hpc.settings import HpcSettings

pytestmark = pytest.mark.integration

#: per scheduler: the node, what fills it, what the held job's reason says
CASES = {
    "slurm": ("hpc-slurm", {"resources": {"cpus": 16, "walltime": 300}}, "held in slurm: JobHeld"),
    "sge": (
        "hpc-sge",
        {"resources": {"cpus": 16, "walltime": 300}, "sge": {"parallel_environment": "smp"}},
        "held in sge: hqw",
    ),
}


def states(job: dict[str, Any]) -> list[str]:
    return [t["state"] for t in job["transitions"]]


KINDS = [pytest.param(k, marks=pytest.mark.backend(k)) for k in ("slurm", "sge")]


def batch_view(kind: str, slurm_cluster: Any, sge_cell: Any) -> str:
    """What the batch system itself shows of its queue and nodes (for a failure's message)."""
    try:
        if kind == "slurm":
            runs = [("squeue", "-a", "-l"), ("sinfo", "-N", "-l")]
            return "\n".join(slurm_cluster.run(*argv).stdout for argv in runs)
        runs = [("qstat", "-f", "-u", "*"), ("qstat", "-g", "c"), ("qstat", "-j", "*")]
        return "\n".join(sge_cell.run(*argv).stdout[-3000:] for argv in runs)
    except Exception as e:  # the message must not hide the failure it explains
        return f"(could not ask: {e!r})"


@pytest.mark.parametrize("kind", KINDS)
def test_queued_batch_job_is_starting_then_held_released_and_run(api, kind, slurm_cluster, sge_cell):
    node, fill, held_reason = CASES[kind]
    blocker = api.submit(node=node, command=["sh", "-c", "echo up; sleep 120"], **fill)
    try:
        # the whole node: it starts only once every slot there is free, which once took SGE over a
        # minute in CI ("PE smp only offers 0 slots" with nothing running): the batch system's own
        # view goes into the message if it never does
        try:
            api.wait_state(blocker["id"], "running", timeout=150)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{kind} shows:\n{batch_view(kind, slurm_cluster, sge_cell)}") from None
        refused = api.post(f"/v1/jobs/{blocker['id']}/hold")  # it runs: too late to hold
        assert refused.status_code == 409 and refused.headers["content-type"].startswith(
            "application/problem+json"
        )
        assert "running" in refused.json()["detail"]
        j = api.submit(node=node, command=["echo", "ran"], resources={"walltime": 300})
        waiting = api.wait_for(
            lambda: (job := api.job(j["id"]))["reason"] and "pending in" in job["reason"] and job,
            30,
            what="the batch system's pending reason",
        )
        assert waiting["state"] == "starting" and waiting["reason"].startswith(f"pending in {kind}: "), (
            waiting
        )

        r = api.post(f"/v1/jobs/{j['id']}/hold")
        assert r.status_code in (200, 202), r.text
        held = api.wait_state(j["id"], "held", timeout=30)
        assert held["reason"].startswith(held_reason) and held["node"] == node, held
        r = api.post(f"/v1/jobs/{j['id']}/release")
        assert r.status_code in (200, 202), r.text
        assert api.wait_state(j["id"], "starting", timeout=30)["reason"].startswith(f"pending in {kind}")
    finally:
        api.post(f"/v1/jobs/{blocker['id']}/cancel")
    done = api.wait_state(j["id"], api.END, timeout=60)
    assert (done["state"], api.logs(j["id"], "stdout")) == ("succeeded", "ran\n"), done
    assert states(done) == ["queued", "starting", "held", "starting", "running", "succeeded"]


@pytest.mark.backend("sge")
def test_hold_in_jobwires_queue_and_release(api, tmp_path):
    """A job its node has no free slot for waits in jobwire's queue: held and released there.

    (A job no node could ever take is now refused at submit, so the node is made busy instead:
    hpc-sge-pe's 8 slots hold jobs that wait for a file.)"""
    go = tmp_path / "go"
    wait = ["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.2; done"]
    busy = [api.submit(node="hpc-sge-pe", command=wait, resources={"walltime": 300}) for _ in range(8)]
    for b in busy:
        api.wait_state(b["id"], {"starting", "running"})
    j = api.submit(node="hpc-sge-pe", command=["true"])
    assert api.wait_state(j["id"], "queued")["state"] == "queued"
    r = api.post(f"/v1/jobs/{j['id']}/hold")
    assert r.status_code == 200 and r.json()["state"] == "held", r.text
    r = api.post(f"/v1/jobs/{j['id']}/release")
    assert r.status_code == 200 and r.json()["state"] == "queued", r.text
    again = api.post(f"/v1/jobs/{j['id']}/release")
    assert again.status_code == 409 and "not held" in again.json()["detail"]
    api.post(f"/v1/jobs/{j['id']}/cancel")
    assert states(api.wait_state(j["id"], "cancelled")) == ["queued", "held", "queued", "cancelled"]
    go.touch()
    for b in busy:
        assert api.wait_state(b["id"], api.END)["state"] == "succeeded"


# --- the crash window between submit and batch_id ---------------------------------------------------


def executor_for(kind: str, root: Path, slurm_cluster: Any, sge_cell: Any) -> HpcExecutor:
    settings = ExecutorSettings(node=f"crash-{kind}", root=str(root))
    hpc = HpcSettings(scheduler=kind, poll_interval=0.1)
    scheduler = (
        Slurm(env=slurm_cluster.env) if kind == "slurm" else Sge(bin_dir=sge_cell.bin, env=sge_cell.env)
    )
    return HpcExecutor(settings, LocalTransport(), str(root), scheduler, hpc)


def named(kind: str, name: str, slurm_cluster: Any, sge_cell: Any) -> list[str]:
    if kind == "slurm":
        out = slurm_cluster.run("squeue", "-h", "-t", "all", "-n", name, "-o", "%i").stdout
        return out.split()
    out = sge_cell.run("qstat", "-j", name).stdout
    return [line.split()[1] for line in out.splitlines() if line.startswith("job_number:")]


@pytest.mark.parametrize("kind", KINDS)
def test_submit_cut_short_before_batch_id_is_not_submitted_twice(kind, tmp_path, slurm_cluster, sge_cell):
    root = tmp_path / "root"
    ex = executor_for(kind, root, slurm_cluster, sge_cell)
    run = RunJob(job_id=new_job_id(), attempt=1, node=f"crash-{kind}", spec=JobSpec(command=["sleep", "30"]))
    name = BatchRequest.name_of(run.job_id, run.attempt)

    async def scenario() -> tuple[str, str, bool]:
        first = await ex.start(run)
        d = Path(ex.files().of(first).private)
        assert (d / SUBMITTING).exists()
        (d / BATCH_ID).unlink()  # the crash: submitted, batch id never written
        assert await ex.existing(run.job_id, run.attempt) is None  # so the RunJob is handled again
        again = await ex.start(run)
        return first.details["batch_id"], again.details["batch_id"], again.running

    first, again, running = asyncio.run(scenario())
    try:
        assert again == first and running is False
        assert ex.calls["submit"] == 1 and ex.calls["find"] == 1
        assert (root / ".executor" / "jobs" / run.job_id / "1" / BATCH_ID).read_text().strip() == first
        time.sleep(0.5)
        assert named(kind, name, slurm_cluster, sge_cell) == [first]
    finally:
        (slurm_cluster.run("scancel", first) if kind == "slurm" else sge_cell.run("qdel", first))


@pytest.mark.parametrize("kind", KINDS)
def test_a_list_of_fewer_jobs_keeps_where_the_others_were_seen(kind, tmp_path, slurm_cluster, sge_cell):
    """An array's hold or release goes out as one command when it covers every task the lists saw
    waiting. A poll that lists only some jobs (the others sat the tick out) once made the rest
    unknown, so a running task counted as waiting and a release went out as one command per task."""
    ex = executor_for(kind, tmp_path / "root", slurm_cluster, sge_cell)
    runs = [
        RunJob(job_id=new_job_id(), attempt=1, node=f"crash-{kind}", spec=JobSpec(command=["sleep", "30"]))
        for _ in range(2)
    ]

    async def scenario() -> tuple[list[str], Any, Any]:
        ids = [str((await ex.start(r)).details["batch_id"]) for r in runs]
        await ex.poller.view(ids, time.time, ())
        seen = ex.poller.last_phase(ids[1])
        ex.poller.refresh_soon()
        await ex.poller.view(ids[:1], time.time, ())
        return ids, seen, ex.poller.last_phase(ids[1])

    ids, seen, after = asyncio.run(scenario())
    try:
        assert ex.calls["list"] == 2
        assert seen is not None and seen.value in ("queued", "running")
        assert after == seen
    finally:
        for i in ids:
            (slurm_cluster.run("scancel", i) if kind == "slurm" else sge_cell.run("qdel", i))
