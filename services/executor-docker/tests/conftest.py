"""A real Docker engine, the test image built once, and one jobwire stack with Docker nodes.

No engine means failed tests, never skipped ones: ``make test`` installs and starts it
(scripts/ci/install-backends.sh docker), including the local ``debian:bookworm`` base.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import docker
import pytest

from jobwire.stack.processes import free_port
from jobwire.stack.stack import ExecutorConfig, Stack, StackConfig
from tests.support import jobapi

HERE = Path(__file__).parent
REPO = HERE.parents[2]
IMAGE = "jobwire-test-job:latest"
BASE = "debian:bookworm"
FAST = {
    "JOBWIRE_SCHEDULER_TICK": "0.2",
    # no Docker test gives a node up for lost; the restart test needs its executor back (over 6 s on 2
    # busy cores) before the node timeout, or the re-adopted jobs are stopped as stale
    "JOBWIRE_SCHEDULER_NODE_TIMEOUT": "20",
    "JOBWIRE_SCHEDULER_TIMEOUT_GRACE": "3",
    "JOBWIRE_EXECUTOR_HEARTBEAT_INTERVAL": "0.5",
    "JOBWIRE_EXECUTOR_TICK_INTERVAL": "0.15",
    "JOBWIRE_EXECUTOR_KILL_GRACE": "2",
    "JOBWIRE_LOG_LEVEL": "INFO",
    # the API on loopback without tokens (the gateway refuses to start open on other addresses)
    "JOBWIRE_GATEWAY_AUTH": "off",
}
END = jobapi.END


@pytest.fixture(scope="session")
def engine() -> Iterator[docker.DockerClient]:
    """The local engine, with the base and test images in place (built once per session)."""
    try:
        client = docker.from_env()
        client.ping()
    except Exception as e:
        pytest.fail(
            f"no Docker engine answers ({e}); run `make test` or scripts/ci/install-backends.sh docker"
        )
    try:
        client.images.get(BASE)
    except docker.errors.ImageNotFound:
        subprocess.run(["bash", str(REPO / "scripts/ci/build-debian-base.sh")], check=True)
    client.images.build(path=str(HERE / "images"), tag=IMAGE, rm=True)
    yield client
    for c in client.containers.list(all=True, sparse=True, filters={"label": "jobwire.node"}):
        if (c.attrs.get("Labels") or {}).get("jobwire.node", "").startswith("dock-"):
            with contextlib.suppress(docker.errors.NotFound):  # removed by its executor meanwhile
                c.remove(force=True)
    client.close()


@pytest.fixture(scope="session")
def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stands in for the NFS mount: the executors and the (local) engine see the same path."""
    root = tmp_path_factory.mktemp("shared")
    (root / "data").mkdir()
    (root / "data" / "config.txt").write_text("threshold=3\n")
    return root


def docker_node(node: str, shared: Path, *, slots: int = 4, **env: str) -> ExecutorConfig:
    base = {
        "JOBWIRE_DOCKER_SHARED_ROOT": str(shared),
        "JOBWIRE_DOCKER_ADVERTISE_HOST": "127.0.0.1",
    }
    return ExecutorConfig(node=node, backend="docker", slots=slots, env={**base, **env})


@pytest.fixture(scope="session")
def stack(
    engine: docker.DockerClient, shared_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Scheduler, gateway and five Docker nodes on the one engine, told apart by their labels.

    ``dock-gpu`` claims two GPUs the engine cannot give (no NVIDIA runtime here) and keeps failed
    containers; ``dock-p1``/``dock-p2`` form pool ``place``; ``dock-r`` is killed and restarted.
    """
    executors = [
        docker_node("dock-a", shared_root, slots=6, JOBWIRE_EXECUTOR_CPUS="8"),
        docker_node(
            "dock-gpu", shared_root, slots=2, JOBWIRE_EXECUTOR_GPUS="2", JOBWIRE_DOCKER_KEEP_FAILED="true"
        ),
        docker_node(
            "dock-p1", shared_root, slots=2, JOBWIRE_EXECUTOR_POOL="place", JOBWIRE_EXECUTOR_MEMORY="8G"
        ),
        docker_node(
            "dock-p2", shared_root, slots=2, JOBWIRE_EXECUTOR_POOL="place", JOBWIRE_EXECUTOR_MEMORY="512M"
        ),
        docker_node("dock-r", shared_root, slots=6, JOBWIRE_EXECUTOR_CPUS="8"),
    ]
    config = StackConfig(
        home=tmp_path_factory.mktemp("stack"),
        api_port=free_port(),
        nats_port=free_port(),
        nats_monitor_port=free_port(),
        executors=executors,
        env=FAST,
    )
    s = Stack(config)
    s.start()
    yield s
    s.stop()


class JobApi(jobapi.JobApi):
    """The REST API with the few steps every test takes; Docker jobs get the test image by default."""

    IMAGE = IMAGE
    DEFAULTS: ClassVar[dict[str, Any]] = {"image": IMAGE, "backend": "docker"}
    STATE_TIMEOUT: ClassVar[float] = 40.0


@pytest.fixture(scope="session")
def api(stack: Stack) -> Iterator[JobApi]:
    with JobApi(base_url=stack.api_url, timeout=30) as client:
        client.wait_for(lambda: len(client.up_nodes()) >= 5, 30, what="five docker nodes up")
        yield client
