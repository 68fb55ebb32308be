"""Jobs through the real stack onto a real SGE 8.1.9 (qsub -terse, qstat -xml, qacct, qdel)."""

from __future__ import annotations

import os
import re
import time

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.backend("sge")]

HOSTILE = [
    "a b",
    "q'uote",
    'd"q',
    "semi;colon",
    "$(touch /tmp/jw-pwned-sge)",
    "`touch /tmp/jw-pwned-sge`",
    "nl\nx",
    # issue 12: SGE reads #$ lines anywhere in a script, even inside quotes; here they are data
    "hi\n#$ -t 1-50000\n#$ -l gpu=8",
    "hi\n#SBATCH --array=1-50000\n#PBS -q root",
]
EVIL_ENV = "ok\n#$ -q root.q\n#$ -o /etc/cron.d/jw"


def test_succeeds_with_exit_code_usage_and_logs(api, sge_cell, batch_id):
    j = api.submit(
        node="hpc-sge",
        command=["sh", "-c", 'echo "hello $GREETING"; echo to-err >&2'],
        env={"GREETING": "sge"},
        resources={"walltime": 120, "cpus": 2},
        sge={"parallel_environment": "smp"},
    )
    done = api.wait_state(j["id"], api.END)
    assert (done["state"], done["exit_code"], done["node"]) == ("succeeded", 0, "hpc-sge"), done
    assert api.logs(j["id"], "stdout") == "hello sge\n"
    assert api.logs(j["id"], "stderr") == "to-err\n"
    usage = done["usage"]
    assert usage["cpu_seconds"] is not None and usage["node_list"], usage
    acct = sge_cell.run("qacct", "-j", batch_id("hpc-sge", j["id"])).stdout
    assert "granted_pe   smp" in acct and "slots        2" in acct


def test_failing_exit_code(api):
    j = api.submit(node="hpc-sge", script="echo failing\nexit 9\n", resources={"walltime": 120})
    done = api.wait_state(j["id"], api.END)
    assert (done["state"], done["exit_code"], done["reason"]) == ("failed", 9, "exit code 9"), done


def test_an_end_is_taken_from_accounting_without_waiting_for_the_next_list(api):
    """``sge-rare-list`` lists the queue every 120 s: each job is listed (pending) once at most, and
    its end arrives from qacct, asked as soon as its wrapper wrote the exit code, with accounting's
    exit code and usage; without that it would wait for the next list, two minutes away."""
    for script, state, code in (("exit 7\n", "failed", 7), ("true\n", "succeeded", 0)):
        began = time.monotonic()
        j = api.submit(node="sge-rare-list", script=script, resources={"walltime": 120})
        done = api.wait_state(j["id"], api.END, timeout=100)
        took = time.monotonic() - began
        assert (done["state"], done["exit_code"]) == (state, code), done
        assert done["usage"]["node_list"], done  # qacct's hostname: the record was read
        assert took < 90, f"{took:.0f} s: the end waited for the next list call"


def test_hostile_args_and_env_are_inert(api, stack, sge_cell, batch_id):
    j = api.submit(
        node="hpc-sge",
        command=["sh", "-c", 'printf "%s|" "$@"; printf "%s" "$EVIL"', "sh", *HOSTILE],
        env={"EVIL": EVIL_ENV},
        resources={"walltime": 120},
    )
    done = api.wait_state(j["id"], api.END)
    assert done["state"] == "succeeded", done
    assert api.logs(j["id"], "stdout") == "|".join(HOSTILE) + "|" + EVIL_ENV
    assert not os.path.exists("/tmp/jw-pwned-sge")
    job_dir = stack.home / "executors" / "hpc-sge" / "jobs" / j["id"] / "1"
    script = (job_dir / "batch.sh").read_text()
    assert not any(
        text in script for text in ("root.q", "-q root", "50000", "cron", "gpu=8", "EVIL", "#SBATCH", "#PBS")
    ), script
    # what SGE made of it: one task in the default queue, its output where jobwire said
    acct = sge_cell.run("qacct", "-j", batch_id("hpc-sge", j["id"])).stdout
    assert re.search(r"^qname\s+all\.q\s*$", acct, re.M) and re.search(
        r"^taskid\s+undefined\s*$", acct, re.M
    ), acct
    verify = sge_cell.run("qsub", "-verify", str(job_dir / "batch.sh")).stdout
    assert "hard_queue_list" not in verify and "job-array" not in verify, verify
    assert f"stdout_path_list:           NONE:NONE:{job_dir}/stdout" in verify, verify


def test_several_slots_without_a_parallel_environment_cannot_run_where_no_default_is_set(api):
    """hpc-sge publishes that multi-slot jobs need sge.parallel_environment (it has no default):
    the gateway refuses such a job with a 422 naming the field, never sends it to SGE to fail."""
    nodes = {n["name"]: n for n in api.get("/v1/nodes").json()["items"]}
    assert nodes["hpc-sge"]["capacity"]["single_slot_unless"] == "sge.parallel_environment"
    assert "single_slot_unless" not in nodes["hpc-sge-pe"]["capacity"]
    r = api.post("/v1/jobs", json={"node": "hpc-sge", "command": ["true"], "resources": {"slots": 4}})
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["path"] == "$.sge.parallel_environment", problem
    assert "needs 4 slots" in problem["detail"] and "sge.parallel_environment" in problem["detail"], problem
    with_pe = {
        "node": "hpc-sge",
        "command": ["true"],
        "resources": {"slots": 2},
        "sge": {"parallel_environment": "smp"},
    }
    ok = api.post("/v1/jobs", json=with_pe)
    assert ok.status_code in (201, 202), ok.text
    assert api.wait_state(ok.json()["id"], api.END)["state"] == "succeeded"


def test_the_nodes_default_parallel_environment_carries_multi_slot_jobs(api, sge_cell, batch_id):
    j = api.submit(
        node="hpc-sge-pe", command=["sh", "-c", "echo $NSLOTS"], resources={"slots": 4, "walltime": 120}
    )
    done = api.wait_state(j["id"], api.END)
    assert (done["state"], done["exit_code"]) == ("succeeded", 0), done
    assert api.logs(j["id"], "stdout") == "4\n"
    acct = sge_cell.run("qacct", "-j", batch_id("hpc-sge-pe", j["id"])).stdout
    assert "granted_pe   smp" in acct and "slots        4" in acct


def test_walltime_timeout(api):
    j = api.submit(node="hpc-sge", command=["sleep", "60"], resources={"walltime": 3})
    done = api.wait_state(j["id"], api.END, timeout=60)
    assert done["state"] == "timed_out", done


def test_cancel(api, sge_cell, batch_id):
    j = api.submit(
        node="hpc-sge", command=["sh", "-c", "echo started; sleep 60"], resources={"walltime": 300}
    )
    api.wait_for(lambda: "started" in api.logs(j["id"], "stdout"), 30, what="the job to start")
    r = api.post(f"/v1/jobs/{j['id']}/cancel")
    assert r.status_code in (200, 202), r.text
    done = api.wait_state(j["id"], api.END)
    assert done["state"] == "cancelled", done
    bid = batch_id("hpc-sge", j["id"])
    assert bid not in sge_cell.run("qstat", "-u", "*").stdout.split()


def test_pending_job_shows_sges_reason_and_its_batch_id_and_cancels_at_once(api, sge_cell, batch_id):
    """20 slots of a 16-slot queue: SGE keeps it pending and says why (qstat -j scheduling info);
    the batch id shows while it waits; a cancel ends it at once (SGE keeps no accounting record of
    a job deleted while pending, which used to cost the whole accounting wait)."""
    j = api.submit(
        node="hpc-sge",
        command=["true"],
        resources={"slots": 20, "walltime": 60},
        sge={"parallel_environment": "smp"},
    )

    def waiting_with_reason():
        job = api.job(j["id"])
        reason = job["reason"] or ""
        return (
            job
            if job["state"] == "starting"
            and reason.startswith("pending in sge: ")
            and reason != "pending in sge: qw"
            else None
        )

    job = api.wait_for(waiting_with_reason, 30, what="SGE's reason for the pending job")
    print("reason:", job["reason"])
    assert "smp" in job["reason"] or "slots" in job["reason"], job["reason"]
    bid = batch_id("hpc-sge", j["id"])
    assert job["details"]["batch_id"] == bid, job
    asked = time.monotonic()
    assert api.post(f"/v1/jobs/{j['id']}/cancel").status_code in (200, 202)
    done = api.wait_state(j["id"], api.END, timeout=30)
    took = time.monotonic() - asked
    assert done["state"] == "cancelled", done
    assert took < 8, f"the cancel took {took:.1f} s (JOBWIRE_HPC_ACCOUNTING_WAIT is 20 s here)"
    assert bid not in sge_cell.run("qstat", "-u", "*").stdout.split()
