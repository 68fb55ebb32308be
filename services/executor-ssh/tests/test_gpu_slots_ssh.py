"""GPU nodes whose host shows fewer CPUs than GPUs (issue 13): every GPU is usable by a 1-CPU job, and a
node that stops answering logs a line per change, not a traceback per poll. Real sshd nodes behind the
jump host, the real stack, nodes file without ``slots``/``cpus`` (what the node reports is used)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobwire.stack.processes import free_port
from jobwire.stack.stack import Stack, StackConfig

from .conftest import DATA, FAST, SshStack, nodes_file

pytestmark = [pytest.mark.e2e, pytest.mark.backend("ssh"), pytest.mark.slow]


@pytest.fixture(scope="module")
def gpu_count() -> int:
    """More GPUs than this machine's CPUs (what the nodes report: they share its kernel)."""
    return 2 * (os.cpu_count() or 1)


@pytest.fixture(scope="module")
def many_gpus(cluster, gpu_count: int) -> Path:  # type: ignore[no-untyped-def]
    d = cluster.base / "smi" / "many"
    d.mkdir(parents=True, exist_ok=True)
    (d / "nvidia-smi").write_bytes((DATA / "nvidia-smi").read_bytes())
    row = "{i}, GPU-{i:08d}-0000-0000-0000-000000000000, NVIDIA H100 80GB HBM3, 81559, 0, 0"
    rows = [row.format(i=i) for i in range(gpu_count)]
    (d / "query-gpu.csv").write_text("\n".join(rows) + "\n")
    for p in (d, d / "nvidia-smi", d / "query-gpu.csv"):
        p.chmod(0o755)
    return d / "nvidia-smi"


@pytest.fixture(scope="module")
def gpu_stack(cluster, many_gpus: Path, tmp_path_factory) -> Iterator[SshStack]:  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("gpu-slots")
    stack = Stack(
        StackConfig(
            home=home,
            api_port=_port(),
            nats_port=_port(),
            nats_monitor_port=_port(),
            executors=[],
            env=FAST,
        )
    )
    stack.start()
    api = httpx.Client(base_url=stack.api_url, timeout=30)
    config = nodes_file(cluster, home / "nodes.yaml", slots=None, cpus=None, nvidia_smi=str(many_gpus))
    s = SshStack(stack, cluster, config, api)
    try:
        s.start_executor()
        s.wait_nodes_up()
        yield s
    finally:
        api.close()
        if s.executor is not None:
            s.executor.stop()
        stack.stop()


def _port() -> int:
    return free_port()


def test_every_gpu_runs_a_one_gpu_job_though_the_host_has_fewer_cpus(gpu_stack, gpu_count):
    node = gpu_stack.nodes()["gpu-a"]
    assert node["capacity"]["gpus"] == gpu_count
    assert node["capacity"]["slots"] == gpu_count  # one slot per GPU, as none is configured
    assert node["capacity"]["cpus"] >= gpu_count
    shared = gpu_stack.cluster.base / "shared"
    marks = [shared / f"gpu-slot-{i}" for i in range(gpu_count)]
    jobs = [
        gpu_stack.submit(
            command=["sh", "-c", f'echo "$CUDA_VISIBLE_DEVICES" > {m}; sleep 6'],
            node="gpu-a",
            resources={"gpus": 1},
            expected_runtime=6,
        )
        for m in marks
    ]
    # all of them run at once: every one has written its mark while none has finished
    gpu_stack.wait_for(lambda: all(m.exists() for m in marks), 20, what="every 1-GPU job running")

    def all_running() -> bool:
        return all(gpu_stack.api.get(f"/v1/jobs/{j['id']}").json()["state"] == "running" for j in jobs)

    gpu_stack.wait_for(all_running, 4, what="every job reported running at once")
    assert sorted(m.read_text().strip() for m in marks) == sorted(str(i) for i in range(gpu_count))
    for j in jobs:
        assert gpu_stack.wait_state(j["id"], {"succeeded", "failed"})["state"] == "succeeded"


def test_an_unreachable_node_logs_its_changes_not_a_traceback_per_poll(gpu_stack):
    job = gpu_stack.submit(command=["sleep", "60"], node="gpu-b", max_attempts=1)
    gpu_stack.wait_state(job["id"], "running", timeout=20)
    log_file = gpu_stack.stack.home / "logs" / "executor-ssh.log"
    before = len(log_file.read_text().splitlines())
    node = gpu_stack.cluster.nodes["gpu-b"]
    node.cut()
    try:
        gpu_stack.wait_for(lambda: gpu_stack.nodes()["gpu-b"]["state"] == "down", 30, what="gpu-b down")
        time.sleep(3)  # dozens of ticks and probes while it stays away
    finally:
        node.restore()
    gpu_stack.wait_for(lambda: gpu_stack.nodes()["gpu-b"]["state"] == "up", 30, what="gpu-b up again")
    lines = log_file.read_text().splitlines()[before:]
    assert not [line for line in lines if "Traceback" in line], "\n".join(lines)
    about = [line for line in lines if "gpu-b" in line and ("WARNING" in line or "ERROR" in line)]
    assert 2 <= len(about) <= 8, "\n".join(about)
    gpu_stack.api.post(f"/v1/jobs/{job['id']}/cancel")
