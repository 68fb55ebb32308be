"""The SLURM flow with the login node reached over SSH: the executor runs elsewhere and every
sbatch/squeue/sacct and file operation goes through the SSH transport (real sshd, key auth,
known_hosts checked), as an unprivileged cluster user."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.backend("slurm"), pytest.mark.backend("ssh")]


def test_slurm_over_ssh_submit_fail_cancel(ssh_api):
    api, login, root = ssh_api
    ok = api.submit(
        node="hpc-ssh", command=["sh", "-c", "id -un; echo 'a;b $(x)'"], resources={"walltime": 120}
    )
    bad = api.submit(node="hpc-ssh", script="exit 3\n", resources={"walltime": 120})
    long = api.submit(
        node="hpc-ssh", command=["sh", "-c", "echo started; sleep 60"], resources={"walltime": 300}
    )
    done = api.wait_state(ok["id"], api.END)
    assert (done["state"], done["exit_code"]) == ("succeeded", 0), done
    assert api.logs(ok["id"], "stdout") == f"{login.user}\na;b $(x)\n"
    assert done["usage"]["cpu_seconds"] is not None, done
    failed = api.wait_state(bad["id"], api.END)
    assert (failed["state"], failed["exit_code"]) == ("failed", 3), failed
    api.wait_for(lambda: "started" in api.logs(long["id"], "stdout"), 30, what="the long job to start")
    assert api.post(f"/v1/jobs/{long['id']}/cancel").status_code in (200, 202)
    assert api.wait_state(long["id"], api.END)["state"] == "cancelled"
    # written on the cluster as the login user (sacct's User column lags right after the end)
    assert (root / "jobs" / ok["id"] / "1" / "stdout").stat().st_uid == login.uid
