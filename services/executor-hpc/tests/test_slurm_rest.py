"""The same SLURM flow through slurmrestd with a JWT (``slurm-rest``), on the real 22.05 cluster."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
from pathlib import Path

import pytest

from jobwire.contracts.v1 import JobSpec, Resources
from jobwire.execution.hpc import BatchRequest, SchedulerError
from jobwire.execution.transport.local import LocalTransport
from jobwire.executor_hpc.schedulers.slurm_rest import SlurmRest

pytestmark = [pytest.mark.integration, pytest.mark.backend("slurm")]


def test_rest_succeeds_fails_and_keeps_the_token_secret(api, stack, slurm_cluster, batch_id):
    ok = api.submit(node="hpc-rest", command=["sh", "-c", "echo via rest"], resources={"walltime": 120})
    bad = api.submit(
        node="hpc-rest", script="exit 7\n", resources={"walltime": 120}, slurm={"partition": "debug"}
    )
    done = api.wait_state(ok["id"], api.END)
    assert (done["state"], done["exit_code"]) == ("succeeded", 0), done
    assert api.logs(ok["id"], "stdout") == "via rest\n"
    assert done["usage"]["node_list"] == ["localhost"], done  # from /slurmdb accounting
    failed = api.wait_state(bad["id"], api.END)
    assert (failed["state"], failed["exit_code"]) == ("failed", 7), failed
    bid = batch_id("hpc-rest", bad["id"])
    assert (
        slurm_cluster.run("sacct", "-n", "-X", "-P", "-j", bid, "-o", "State,Partition").stdout.strip()
        == "FAILED|debug"
    )
    token = Path(stack.services["executor-hpc-rest"].env["JOBWIRE_HPC_REST_TOKEN_FILE"]).read_text().strip()
    assert len(token) > 20
    log = (stack.home / "logs" / "executor-hpc-rest.log").read_text()
    assert token not in log
    assert "failed" not in log.lower().replace("attempt 1 failed", ""), log[-2000:]
    job_dir = stack.home / "executors" / "hpc-rest" / "jobs" / ok["id"] / "1"
    for f in job_dir.iterdir():
        if f.is_file():
            assert token.encode() not in f.read_bytes(), f
    # nothing running carries it in its command line
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert token not in ps


def test_rest_job_description_carries_no_user_text_and_the_job_prints_it(api, stack, slurm_cluster, batch_id):
    """slurm-rest posts the script inside its JSON body: the same fixed text, so a job whose command
    and env hold directive lines runs in jobwire's partition as one job and prints them literally."""
    hostile = "hi\n#SBATCH --partition=root\n#SBATCH --array=1-50000"
    j = api.submit(
        node="hpc-rest",
        command=["sh", "-c", 'printf "%s|%s" "$1" "$EVIL"', "sh", hostile],
        env={"EVIL": "ok\n#SBATCH --nodes=8"},
        resources={"walltime": 120},
        slurm={"partition": "debug"},
    )
    done = api.wait_state(j["id"], api.END)
    assert (done["state"], done["exit_code"]) == ("succeeded", 0), done
    assert api.logs(j["id"], "stdout") == hostile + "|ok\n#SBATCH --nodes=8"
    bid = batch_id("hpc-rest", j["id"])
    acct = slurm_cluster.run("sacct", "-n", "-X", "-P", "-j", bid, "-o", "Partition,NNodes,JobID").stdout
    assert acct.strip() == f"debug|1|{bid}", acct  # one job (no array), one node, jobwire's partition
    body = (stack.home / "executors" / "hpc-rest" / "jobs" / j["id"] / "1" / "batch.sh.json").read_text()
    assert not any(text in body for text in ("--partition=root", "50000", "EVIL", "--nodes=8")), body


def test_rest_cancel(api, slurm_cluster, batch_id):
    j = api.submit(
        node="hpc-rest", command=["sh", "-c", "echo started; sleep 60"], resources={"walltime": 300}
    )
    api.wait_for(lambda: "started" in api.logs(j["id"], "stdout"), 30, what="the job to start")
    assert api.post(f"/v1/jobs/{j['id']}/cancel").status_code in (200, 202)
    done = api.wait_state(j["id"], api.END)
    assert done["state"] == "cancelled", done
    bid = batch_id("hpc-rest", j["id"])
    api.wait_for(
        lambda: slurm_cluster.run("sacct", "-n", "-X", "-P", "-j", bid, "-o", "State").stdout.startswith(
            "CANCELLED"
        ),
        20,
        what="SLURM to record the cancel",
    )


def test_rest_carries_the_gpu_request_to_slurm(slurm_cluster, tmp_path):
    """``resources.gpus`` reaches slurmrestd as sbatch's ``--gres`` would (the old script round trip
    dropped it and the job ran without GPUs): this cluster has no GRES, so SLURM refuses it, and says
    so in slurmrestd's log. The adapter against the real slurmrestd, no stack."""
    log = Path(slurm_cluster.base) / "slurm" / "log" / "slurmrestd.log"
    before = log.read_text().count("Invalid generic resource (gres) specification")
    token = tmp_path / "jwt"
    token.write_text(slurm_cluster.token())
    rest = SlurmRest(options={"url": slurm_cluster.rest_url, "user": "root", "token_file": str(token)})
    t = LocalTransport()
    spec = JobSpec(command=["true"], resources=Resources(gpus=1))
    req = BatchRequest(
        job_id="01a2b3c4-0000-7000-8000-0000000000ff",
        attempt=1,
        spec=spec,
        job_dir=str(tmp_path),
        stdout=str(tmp_path / "stdout"),
        stderr=str(tmp_path / "stderr"),
        argv=["true"],
    )

    async def go() -> None:
        await rest.prepare(t)
        directives = rest.directives(req)
        script = rest.build_script(req, directives)
        path = tmp_path / "batch.sh"
        path.write_text(script)
        for suffix, data in rest.submit_files(req, directives, script).items():
            (tmp_path / f"batch.sh{suffix}").write_bytes(data)
        with pytest.raises(SchedulerError):
            await rest.submit(t, str(path))

    asyncio.run(go())
    assert log.read_text().count("Invalid generic resource (gres) specification") == before + 1
    without = rest.directives(dataclasses.replace(req, spec=JobSpec(command=["true"])))
    assert all(option != "--gres" for option, _ in without)  # asked only when the job asks
