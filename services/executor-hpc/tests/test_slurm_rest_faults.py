"""slurm-rest when slurmrestd is down or refuses the token: the job waits, says why, and runs once
the service is back (real slurmrestd 22.05 started and stopped here, real JWTs from scontrol)."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.backend("slurm")]


@contextmanager
def slurmrestd(slurm_cluster, port: int) -> Iterator[None]:
    """A slurmrestd of the test cluster on ``port``, as slurm-up.sh starts one (user nobody, JWT)."""
    proc = subprocess.Popen(
        [
            "runuser", "-u", "nobody", "--", "env", f"SLURM_CONF={slurm_cluster.conf}",
            "SLURM_JWT=daemon", "slurmrestd", "-a", "rest_auth/jwt",
            "-s", "openapi/v0.0.38,openapi/dbv0.0.38", f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def forged_token(lifespan: int = 3600) -> str:
    """A well-formed HS256 JWT for root that the cluster's key did not sign."""

    def b64(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = {"exp": int(time.time()) + lifespan, "iat": int(time.time()), "sun": "root"}
    return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}.{'A' * 43}"


def _starting_with(api, job_id: str, *words: str) -> dict:
    def check():
        job = api.job(job_id)
        assert job["state"] in ("queued", "starting"), job
        return job if job["state"] == "starting" and all(w in (job["reason"] or "") for w in words) else None

    return api.wait_for(check, 30, what=f"job {job_id} starting with a reason naming {words}")


def test_slurmrestd_down_keeps_the_job_starting_until_it_is_back(api, slurm_cluster, rest_faults, stack):
    rest_faults.token_file.write_text(slurm_cluster.token())
    j = api.submit(node="hpc-rest-faults", command=["sh", "-c", "echo after the outage"])
    job = _starting_with(api, j["id"], "slurmrestd", "curl failed")
    time.sleep(7)  # three launch tries at least (2 s, 4 s backoff), none of them fails the job
    job = api.job(j["id"])
    assert (job["state"], job["attempt"]) == ("starting", 1), job
    log = (stack.home / "logs" / "executor-hpc-rest-faults.log").read_text()
    assert log.count(f"{j['id']} attempt 1 waits") >= 3, log[-3000:]
    with slurmrestd(slurm_cluster, rest_faults.port):
        done = api.wait_state(j["id"], api.END, timeout=90)
    assert (done["state"], done["attempt"], done["exit_code"]) == ("succeeded", 1, 0), done
    assert api.logs(j["id"], "stdout") == "after the outage\n"


def test_expired_and_rejected_tokens_name_the_token_file(api, slurm_cluster, rest_faults, stack):
    setting = "JOBWIRE_HPC_REST_TOKEN_FILE"
    with slurmrestd(slurm_cluster, rest_faults.port):
        rest_faults.token_file.write_text(slurm_cluster.token(lifespan=1))
        time.sleep(2)
        expired = api.submit(node="hpc-rest-faults", command=["true"])
        job = _starting_with(api, expired["id"], setting, "expired")
        assert str(rest_faults.token_file) in job["reason"], job

        forged = forged_token()
        rest_faults.token_file.write_text(forged)
        rejected = api.submit(node="hpc-rest-faults", command=["true"])
        _starting_with(api, rejected["id"], setting)

        rest_faults.token_file.write_text(slurm_cluster.token())
        for j in (expired, rejected):
            done = api.wait_state(j["id"], api.END, timeout=120)
            assert (done["state"], done["attempt"]) == ("succeeded", 1), done
    token = rest_faults.token_file.read_text().strip()
    log = (stack.home / "logs" / "executor-hpc-rest-faults.log").read_text()
    assert token not in log and forged not in log
