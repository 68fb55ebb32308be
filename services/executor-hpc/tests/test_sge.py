"""Jobs through the real stack onto a real SGE 8.1.9 (qsub -terse, qstat -xml, qacct, qdel)."""

from __future__ import annotations

import os

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
]


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


def test_hostile_args_and_env_are_inert(api):
    j = api.submit(
        node="hpc-sge",
        command=["printf", "%s|", *HOSTILE],
        env={"EVIL": "x'; touch /tmp/jw-pwned-sge; echo '$(id)`id`\nnext"},
        resources={"walltime": 120},
    )
    done = api.wait_state(j["id"], api.END)
    assert done["state"] == "succeeded", done
    assert api.logs(j["id"], "stdout") == "|".join(HOSTILE) + "|"
    assert not os.path.exists("/tmp/jw-pwned-sge")


def test_several_slots_without_a_parallel_environment_are_refused(api):
    j = api.submit(node="hpc-sge", command=["true"], resources={"slots": 4})
    done = api.wait_state(j["id"], api.END)
    assert done["state"] == "failed" and "parallel_environment" in done["reason"], done


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
