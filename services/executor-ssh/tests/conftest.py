"""SSH executor fixtures: real sshd (jump host + GPU nodes in network namespaces), the real stack.

The cluster is started once per session. Each test module gets its own stack (nats-server,
scheduler, gateway as processes) and an ``jobwire-executor-ssh`` process serving both nodes.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobwire.stack.processes import ServiceProcess, free_port
from jobwire.stack.stack import Stack, StackConfig
from tests.fixtures.ssh import SshCluster, start_cluster, stop_cluster
from tests.support.jobapi import logs, submit, wait_for, wait_state

DATA = Path(__file__).parent / "data"
NODES = {"gpu-a": "a100x2.csv", "gpu-b": "v100x2.csv"}
FAST = {
    "JOBWIRE_SCHEDULER_TICK": "0.2",
    "JOBWIRE_SCHEDULER_NODE_TIMEOUT": "3",
    "JOBWIRE_SCHEDULER_TIMEOUT_GRACE": "3",
    "JOBWIRE_EXECUTOR_HEARTBEAT_INTERVAL": "0.5",
    "JOBWIRE_EXECUTOR_TICK_INTERVAL": "0.1",
    "JOBWIRE_EXECUTOR_KILL_GRACE": "2",
    "JOBWIRE_LOG_LEVEL": "INFO",
    # tests talk to a loopback gateway without credentials
    "JOBWIRE_GATEWAY_AUTH": "off",
}


@pytest.fixture(scope="session")
def cluster() -> Iterator[SshCluster]:
    c = start_cluster(list(NODES))
    try:
        for name, inventory in NODES.items():
            d = c.base / "smi" / name
            d.mkdir(parents=True)
            shutil.copy(DATA / "nvidia-smi", d / "nvidia-smi")
            shutil.copy(DATA / inventory, d / "query-gpu.csv")
            for p in (c.base / "smi", d):
                p.chmod(0o755)
        # Where jobs leave what tests look at (the filesystem is shared with the nodes).
        (c.base / "shared").mkdir()
        (c.base / "shared").chmod(0o777)
        yield c
    finally:
        stop_cluster(c)


def nodes_file(c: SshCluster, path: Path, **node_overrides: Any) -> Path:
    """A nodes file for the cluster (JSON is YAML too)."""
    config = {
        "defaults": {
            "user": c.user,
            "key": str(c.client_key),
            "known_hosts": str(c.known_hosts),
            "down_after": 2,
            "probe_timeout": 1.5,
            "connect_timeout": 2,
            "reconnect_max": 1,
            "slots": 2,
            "cpus": 8,
        },
        "hosts": {"jump": {"host": "127.0.0.1", "port": c.jump_port}},
        "nodes": {
            name: {
                "host": n.address,
                "jump": ["jump"],
                "nvidia_smi": str(c.base / "smi" / name / "nvidia-smi"),
                "labels": {"site": "test"},
                **node_overrides,
            }
            for name, n in c.nodes.items()
        },
    }
    path.write_text(json.dumps(config, indent=2))
    return path


@dataclass
class SshStack:
    stack: Stack
    cluster: SshCluster
    config: Path
    api: httpx.Client
    executor: ServiceProcess | None = None

    def start_executor(self) -> ServiceProcess:
        env = self.stack.base_env()
        proc = ServiceProcess(
            "executor-ssh",
            [sys.executable, "-m", "jobwire.executor_ssh", "--config", str(self.config)],
            env,
            self.stack.home / "logs" / "executor-ssh.log",
        )
        proc.start()
        self.executor = proc
        return proc

    # Helpers as methods, so test modules need no imports from here (no tests package).
    def submit(self, **spec: Any) -> dict[str, Any]:
        return submit(self.api, **spec)

    def wait_state(self, job_id: str, states: set[str] | str, timeout: float = 30.0) -> dict[str, Any]:
        return wait_state(self.api, job_id, states, timeout)

    def logs(self, job_id: str, stream: str = "stdout") -> str:
        return logs(self.api, job_id, stream)

    @staticmethod
    def wait_for(
        pred: Callable[[], Any], timeout: float = 30.0, every: float = 0.1, what: str = "condition"
    ) -> Any:
        return wait_for(pred, timeout, every, what)

    def nodes(self) -> dict[str, dict[str, Any]]:
        return {n["name"]: n for n in self.api.get("/v1/nodes").json()["items"]}

    def wait_nodes_up(self, timeout: float = 30.0) -> None:
        def up() -> bool:
            nodes = self.nodes()
            return all(nodes.get(n, {}).get("state") == "up" for n in self.cluster.nodes)

        wait_for(up, timeout, what="both SSH nodes up")


@pytest.fixture(scope="module")
def ssh_stack(
    cluster: SshCluster, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[SshStack]:
    """A stack per test module; a module may tune it with ``STACK_ENV``."""
    home = tmp_path_factory.mktemp("ssh-stack")
    config = StackConfig(
        home=home,
        api_port=free_port(),
        nats_port=free_port(),
        nats_monitor_port=free_port(),
        executors=[],
        env={**FAST, **getattr(request.module, "STACK_ENV", {})},
    )
    stack = Stack(config)
    stack.start()
    # a module whose stack checks tokens gives the key its own calls use
    api = httpx.Client(
        base_url=stack.api_url, timeout=30, headers=getattr(request.module, "STACK_HEADERS", {})
    )
    s = SshStack(stack, cluster, nodes_file(cluster, home / "nodes.yaml"), api)
    try:
        s.start_executor()
        s.wait_nodes_up()
        yield s
    finally:
        api.close()
        if s.executor is not None:
            s.executor.stop()
        stack.stop()
