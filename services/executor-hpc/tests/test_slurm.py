"""Jobs through the real stack onto a real SLURM 22.05 (sbatch, squeue, sacct, scancel)."""

from __future__ import annotations

import json
import os
import time

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.backend("slurm")]

HOSTILE = [
    "a b",
    "q'uote",
    'd"q',
    "semi;colon",
    "$(touch /tmp/jw-pwned)",
    "`touch /tmp/jw-pwned`",
    "new\nline",
    # issue 12's directive lines: data for the job, never lines of its batch script
    "hi\n#SBATCH --partition=root\n#SBATCH --array=1-50000",
    "hi\n#$ -t 1-50000\n#$ -l gpu=8",
]
EVIL_ENV = "x'; touch /tmp/jw-pwned; echo '$(id)`id`\n#SBATCH --nodes=8\nnext"


def test_a_batch_job_never_sees_the_executors_environment(api):
    """sbatch hands its whole environment to the job: it is submitted with the allowlist only."""
    j = api.submit(
        cluster="jwtest",
        command=["python3", "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
        env={"GREETING": "slurm"},
        resources={"cpus": 1, "memory": "64M", "walltime": 120},
    )
    done = api.wait_state(j["id"], api.END)
    why = (done["reason"], api.logs(j["id"], "stderr"))
    assert (done["state"], done["node"]) == ("succeeded", "hpc-slurm"), why
    env = json.loads(api.logs(j["id"], "stdout"))
    assert "PGPASSWORD" not in env and "OTEL_EXPORTER_OTLP_HEADERS" not in env
    assert not any("secret-hpc" in v for v in env.values())
    assert env["GREETING"] == "slurm" and env["JOBWIRE_JOB_ID"] == j["id"]
    assert env["SLURM_JOB_ID"] and env["PATH"]  # the batch system's own variables still arrive


def test_succeeds_with_exit_code_usage_and_logs(api, stack, slurm_cluster, batch_id):
    j = api.submit(
        cluster="jwtest",
        command=[
            "sh",
            "-c",
            'echo "hello $GREETING"; echo to-err >&2; i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done',
        ],
        env={"GREETING": "slurm"},
        resources={"cpus": 1, "memory": "64M", "walltime": 120},
        slurm={"partition": "debug"},
    )
    done = api.wait_state(j["id"], api.END)
    assert (done["state"], done["exit_code"], done["node"]) == ("succeeded", 0, "hpc-slurm"), done
    assert api.logs(j["id"], "stdout") == "hello slurm\n"
    assert api.logs(j["id"], "stderr") == "to-err\n"
    usage = done["usage"]
    assert usage["cpu_seconds"] > 0 and usage["node_list"] == ["localhost"], usage
    bid = batch_id("hpc-slurm", j["id"])
    acct = slurm_cluster.run("sacct", "-n", "-X", "-P", "-j", bid, "-o", "State,ExitCode").stdout.strip()
    assert acct == "COMPLETED|0:0"


def test_failing_exit_code_from_the_job(api):
    j = api.submit(node="hpc-slurm", script="echo failing\nexit 7\n", resources={"walltime": 120})
    done = api.wait_state(j["id"], api.END)
    assert (done["state"], done["exit_code"], done["reason"]) == ("failed", 7, "exit code 7"), done
    assert api.logs(j["id"], "stdout") == "failing\n"


def test_hostile_args_and_env_are_inert(api, stack):
    j = api.submit(
        node="hpc-slurm",
        command=["sh", "-c", 'printf "%s|" "$@"; printf "%s" "$EVIL"', "sh", *HOSTILE],
        env={"EVIL": EVIL_ENV},
        resources={"walltime": 120},
        slurm={"partition": "debug"},
    )
    done = api.wait_state(j["id"], api.END)
    assert done["state"] == "succeeded", done
    assert api.logs(j["id"], "stdout") == "|".join(HOSTILE) + "|" + EVIL_ENV
    script = (stack.home / "executors" / "hpc-slurm" / "jobs" / j["id"] / "1" / "batch.sh").read_text()
    directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH --partition=debug" in directives and "#SBATCH --nodes=1" in directives, directives
    assert len({line.split("=")[0] for line in directives}) == len(directives), directives  # each once
    injected = ("--partition=root", "--array", "50000", "EVIL", "--nodes=8", "touch", "#$")
    assert not any(text in script for text in injected), script
    assert not os.path.exists("/tmp/jw-pwned")


def test_bad_partition_name_is_refused_at_submit_naming_the_field(api):
    r = api.post(
        "/v1/jobs",
        json={"node": "hpc-slurm", "command": ["true"], "slurm": {"partition": "debug\n#SBATCH --uid=0"}},
    )
    assert r.status_code == 422 and r.json()["path"] == "$.slurm.partition", r.text


def test_walltime_timeout(api):
    j = api.submit(node="hpc-slurm", command=["sleep", "60"], resources={"walltime": 3})
    done = api.wait_state(j["id"], api.END, timeout=60)
    assert done["state"] == "timed_out", done


def test_cancel(api, stack, slurm_cluster, batch_id):
    j = api.submit(
        node="hpc-slurm", command=["sh", "-c", "echo started; sleep 60"], resources={"walltime": 300}
    )
    api.wait_for(lambda: "started" in api.logs(j["id"], "stdout"), 30, what="the job to start")
    r = api.post(f"/v1/jobs/{j['id']}/cancel")
    assert r.status_code in (200, 202), r.text
    done = api.wait_state(j["id"], api.END)
    assert done["state"] == "cancelled", done
    bid = batch_id("hpc-slurm", j["id"])
    api.wait_for(
        lambda: slurm_cluster.run("sacct", "-n", "-X", "-P", "-j", bid, "-o", "State").stdout.startswith(
            "CANCELLED"
        ),
        20,
        what="SLURM to record the cancel",
    )


def test_job_cancelled_outside_jobwire(api, stack, slurm_cluster, batch_id):
    j = api.submit(
        node="hpc-slurm", command=["sh", "-c", "echo started; sleep 60"], resources={"walltime": 300}
    )
    api.wait_for(lambda: "started" in api.logs(j["id"], "stdout"), 30, what="the job to start")
    assert slurm_cluster.run("scancel", batch_id("hpc-slurm", j["id"])).returncode == 0
    done = api.wait_state(j["id"], api.END)
    assert done["state"] == "cancelled" and "CANCELLED" in done["reason"], done


def test_job_that_vanishes_from_squeue_before_the_poll(api, stack, slurm_cluster, batch_id):
    """The executor is stopped while the job runs and ends; SLURM purges it (MinJobAge) before
    the executor polls again: the end comes from sacct and the exit-code file."""
    j = api.submit(node="hpc-slurm", command=["sh", "-c", "sleep 2; exit 5"], resources={"walltime": 300})
    api.wait_state(j["id"], "running")
    stack.services["executor-hpc-slurm"].stop()
    bid = batch_id("hpc-slurm", j["id"])
    api.wait_for(
        lambda: slurm_cluster.run("sacct", "-n", "-X", "-P", "-j", bid, "-o", "State").stdout.startswith(
            "FAILED"
        ),
        30,
        what="the job to end",
    )
    # MinJobAge=3: slurmctld forgets it and squeue no longer knows the id.
    api.wait_for(
        lambda: bid not in slurm_cluster.run("squeue", "-h", "-t", "all", "-o", "%i").stdout.split(), 30
    )
    stack.start_service("executor-hpc-slurm")
    done = api.wait_state(j["id"], api.END)
    assert (done["state"], done["exit_code"]) == ("failed", 5), done


def test_restart_readopts_batch_jobs_by_id(api, stack):
    jobs = [
        api.submit(
            node="hpc-slurm", command=["sh", "-c", f"echo job{i}; sleep 3"], resources={"walltime": 300}
        )
        for i in range(3)
    ]
    for j in jobs:
        api.wait_state(j["id"], "running")
    stack.services["executor-hpc-slurm"].kill()
    time.sleep(1)
    stack.start_service("executor-hpc-slurm")
    for i, j in enumerate(jobs):
        done = api.wait_state(j["id"], api.END)
        assert (done["state"], done["exit_code"]) == ("succeeded", 0), done
        assert api.logs(j["id"], "stdout") == f"job{i}\n"


def test_delete_removes_the_job_directory_on_shared_storage(api, stack):
    """run.json and batch.args carry the job's environment: after the 204 nothing of the job stays on
    the cluster, in its directory or the executor's."""
    j = api.submit(node="hpc-slurm", command=["true"], env={"TOKEN": "secret-of-the-job"})
    assert api.wait_state(j["id"], api.END)["state"] == "succeeded"
    root = stack.home / "executors" / "hpc-slurm"
    job_dir, own_dir = root / "jobs" / j["id"], root / ".executor" / "jobs" / j["id"]
    assert b"secret-of-the-job" in (own_dir / "1" / "run.json").read_bytes()
    assert b"secret-of-the-job" in (job_dir / "1" / "batch.args").read_bytes()
    assert api.delete(f"/v1/jobs/{j['id']}").status_code in (202, 204)
    api.wait_for(lambda: not job_dir.exists() and not own_dir.exists(), 20, what=f"{job_dir} to be removed")
    assert api.get(f"/v1/jobs/{j['id']}").status_code == 404


def test_backend_options_are_slurms_own_and_checked_at_submit(api, stack):
    """``backend_options`` reach sbatch like the ``slurm`` field, checked by the schema the node
    publishes: the gateway names a bad field without knowing SLURM's options."""
    j = api.submit(node="hpc-slurm", command=["true"], backend_options={"partition": "nosuchpart"})
    done = api.wait_state(j["id"], api.END)
    assert done["state"] == "failed" and "partition" in done["reason"], done  # sbatch refused it
    script = (stack.home / "executors" / "hpc-slurm" / "jobs" / j["id"] / "1" / "batch.sh").read_text()
    assert "#SBATCH --partition=nosuchpart\n" in script
    bad = api.post(
        "/v1/jobs", json={"node": "hpc-slurm", "command": ["true"], "backend_options": {"partition": 5}}
    )
    assert bad.status_code == 422 and "$.backend_options.partition" in bad.json()["detail"], bad.text
