"""A gang on SLURM through the whole stack: gateway -> scheduler -> executor-hpc -> a real SLURM of two
slurmd nodes (``tests/fixtures/slurm-two-up.sh``). ``"backend": "hpc", "resources": {"nodes": 2}``
goes to the one executor node that launches gangs itself and becomes one ``--nodes 2`` batch job whose
srun step starts one rank per node; each rank's output is served by ``?rank=`` (and followed live by
``jobwire logs -f --rank``) as a Docker or SSH rank's is, and a rank killed from outside fails the job
naming it. Hold ``flock /tmp/jobwire-backends.lock`` when running it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobwire.stack.stack import ExecutorConfig, Stack
from tests.fixtures.slurm import SlurmCluster
from tests.support.gang import RENDEZVOUS, gone, met, rank_report

from .conftest import make_stack, submit, wait_for, wait_state

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.backend("slurm")]

NODE = "slurm-gang"
#: a loaded 2-core machine: SLURM's start, the ranks' rendezvous and the executor's polls all wait
SLOW = 180


@pytest.fixture(scope="module")
def slurm_stack(slurm_two_nodes: SlurmCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("slurm-gang")
    home.chmod(0o755)
    env = {
        "JOBWIRE_HPC_SCHEDULER": "slurm",
        "JOBWIRE_HPC_POLL_INTERVAL": "0.5",
        # the 2-node cluster keeps no accounting: the end is read from the wrapper's files after this
        "JOBWIRE_HPC_ACCOUNTING_WAIT": "3",
        **slurm_two_nodes.env,
    }
    # a batch system's commands can hold the executor's heartbeat up for seconds on a loaded machine
    slow = {"JOBWIRE_SCHEDULER_NODE_TIMEOUT": "60"}
    s = make_stack(home, [ExecutorConfig(node=NODE, backend="hpc", slots=2, env=env)], env=slow)
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def api(slurm_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=slurm_stack.api_url, headers=slurm_stack.auth_headers, timeout=30) as c:

        def up() -> bool:
            return any(n["name"] == NODE and n["state"] == "up" for n in c.get("/v1/nodes").json()["items"])

        wait_for(up, 60, what=f"node {NODE} up")
        yield c


def gang(api: httpx.Client, command: list[str]) -> dict:
    spec = {"backend": "hpc", "resources": {"nodes": 2, "cpus": 1, "walltime": 300}}
    return submit(api, command=command, expected_runtime=30, **spec)


def logs(api: httpx.Client, job: str, **params: str | int) -> str:
    r = api.get(f"/v1/jobs/{job}/logs", params=params)
    assert r.status_code == 200, r.text
    return r.text


def test_two_ranks_meet_and_each_ranks_logs_are_served_by_rank(api: httpx.Client, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    job = gang(api, [sys.executable, "-c", RENDEZVOUS, str(out), "0"])
    done = wait_state(api, job["id"], {"succeeded", "failed", "cancelled"}, timeout=SLOW)
    assert done["state"] == "succeeded", done
    assert done["node"] == NODE  # one job on the one SLURM executor node, not two dispatched ranks
    for rank in (0, 1):
        report = rank_report(out / f"rank-{rank}")
        assert report["seen"] == [0, 1]
        env = report["env"]
        assert env["RANK"] == env["JOBWIRE_RANK"] == str(rank)
        assert env["WORLD_SIZE"] == env["JOBWIRE_WORLD_SIZE"] == "2"
        assert env["MASTER_ADDR"] == "127.0.0.1"  # jw1's NodeAddr
        assert env["JOBWIRE_JOB_ID"] == job["id"]
    for rank in (0, 1):  # each rank's output on its own stream, as a Docker or SSH rank's
        only = logs(api, job["id"], rank=rank, stream="stdout")
        assert only == f"hello from rank {rank} of 2\n"
    assert logs(api, job["id"], rank=1) == "hello from rank 1 of 2\n"  # its stderr is empty
    assert logs(api, job["id"], stream="stdout") == "hello from rank 0 of 2\n"  # rank 0's: the job's
    everything = logs(api, job["id"])  # without rank: every rank's
    assert sorted(everything.splitlines()) == ["hello from rank 0 of 2", "hello from rank 1 of 2"]
    # the files request serves rank 1's log as it was written, in the attempt's directory
    kept = api.get(f"/v1/jobs/{job['id']}/files/rank1/stdout")
    assert kept.status_code == 200, kept.text
    assert kept.text == "hello from rank 1 of 2\n"


def test_a_ranks_log_is_followed_live(api: httpx.Client, slurm_stack: Stack, tmp_path: Path) -> None:
    """``jobwire logs -f --rank 1`` prints rank 1's line while the job still runs (it cannot end
    before the test lets it), and returns once the job ended and the rank's output closed."""
    go = tmp_path / "go"
    script = f'echo "line from rank $RANK"; while [ ! -e {go} ]; do sleep 0.2; done'
    job = gang(api, ["/bin/sh", "-c", script])
    env = {**os.environ, "JOBWIRE_URL": slurm_stack.api_url, "JOBWIRE_TOKEN": slurm_stack.token or ""}
    cli = [sys.executable, "-m", "jobwire.client.cli", "logs", "-f", "--rank", "1", job["id"]]
    with subprocess.Popen(cli, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        try:
            assert p.stdout is not None
            first = p.stdout.readline()  # blocks until rank 1's line is streamed
            assert first == "line from rank 1\n", (first, p.poll())
            state = api.get(f"/v1/jobs/{job['id']}").json()["state"]
            assert state in ("starting", "running"), state  # followed live, not read after the end
            go.touch()
            rest, err = p.communicate(timeout=SLOW)
        finally:
            if p.poll() is None:
                p.kill()
    assert p.returncode == 0, err
    assert rest == ""  # nothing but rank 1's own line: no other rank's output
    done = wait_state(api, job["id"], {"succeeded", "failed"}, timeout=SLOW)
    assert done["state"] == "succeeded", done
    assert logs(api, job["id"], rank=0) == "line from rank 0\n"


def test_killing_one_rank_fails_the_job_naming_the_rank(api: httpx.Client, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    job = gang(api, [sys.executable, "-c", RENDEZVOUS, str(out), "300"])
    pids = wait_for(lambda: met([out, out]), SLOW, what="the 2 ranks to meet")
    wait_state(api, job["id"], "running", timeout=SLOW)
    os.kill(pids[1], signal.SIGKILL)
    done = wait_state(api, job["id"], {"failed", "succeeded", "cancelled"}, timeout=SLOW)
    assert done["state"] == "failed", done
    assert done["reason"] == "rank 1 exited with code 137; srun stopped the other ranks", done
    assert done["exit_code"] == 137
    wait_for(lambda: gone(pids[0]), 60, what="rank 0 to be stopped")  # not left sleeping its 300 s
    assert not (out / "end-0").exists()
    assert "hello from rank 1 of 2" in logs(api, job["id"], rank=1, stream="stdout")
