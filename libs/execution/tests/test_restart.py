"""The executor as a real process: SIGKILLed mid-run, restarted, and nothing lost or doubled."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from jobwire.contracts.v1 import JobState
from jobwire.contracts.v1 import subjects as sj

pytestmark = pytest.mark.integration


def start_executor(
    node: str, root: Path, nats_url: str, log: Path, extra: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "JOBWIRE_NATS_URL": nats_url,
        "JOBWIRE_EXECUTOR_HEARTBEAT_INTERVAL": "0.3",
        **(extra or {}),
    }
    cmd = [
        sys.executable,
        "-m",
        "jobwire.execution",
        "--node",
        node,
        "--root",
        str(root),
        "--tick-interval",
        "0.1",
    ]
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


async def wait_heartbeat(bus, node: str) -> None:
    sub = await bus.nc.subscribe(sj.heartbeat_subject(node))
    try:
        await sub.next_msg(timeout=15)
    finally:
        await sub.unsubscribe()


async def test_sigkilled_executor_adopts_its_runs_after_a_restart(harness, until, tmp_path):
    node = "restart-node"
    root = tmp_path / "root"
    log = tmp_path / "executor.log"
    proc = start_executor(node, root, harness.nats_url, log)
    try:
        await wait_heartbeat(harness.bus, node)
        long = await harness.run(node, {"command": ["sh", "-c", "echo a1; sleep 3; echo a2; exit 4"]})
        short = await harness.run(node, {"command": ["sh", "-c", "echo b1; sleep 0.8; echo b2 >&2; exit 5"]})
        await harness.wait(long, "running")
        await harness.wait(short, "running")

        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        own = root / ".executor" / "jobs"
        short_exit = own / short / "1" / "exit_code"
        await until(short_exit.exists, timeout=5, what="the short job ends while the executor is down")
        assert not (own / long / "1" / "exit_code").exists(), "the long job still runs"
        assert not harness.of(long, "finished") and not harness.of(short, "finished")

        proc = start_executor(node, root, harness.nats_url, log)
        short_done = await harness.wait(short, "finished")
        long_done = await harness.wait(long, "finished", timeout=15)
        await harness.settle(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode == 0, log.read_text()[-3000:]

    assert (short_done.outcome, short_done.exit_code) == (JobState.FAILED, 5)
    assert (long_done.outcome, long_done.exit_code, long_done.reason) == (JobState.FAILED, 4, "exit code 4")
    assert len(harness.of(short, "finished")) == 1 and len(harness.of(long, "finished")) == 1
    assert await harness.text(long, "stdout") == "a1\na2\n"
    assert await harness.text(short, "stdout") == "b1\n"
    assert await harness.text(short, "stderr") == "b2\n"


async def test_sigterm_leaves_jobs_running_for_the_next_start(harness, tmp_path):
    node = "term-node"
    root = tmp_path / "root"
    log = tmp_path / "executor.log"
    proc = start_executor(node, root, harness.nats_url, log)
    try:
        await wait_heartbeat(harness.bus, node)
        job = await harness.run(node, {"command": ["sh", "-c", "sleep 1.5; echo done"]})
        await harness.wait(job, "running")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 10) == 0, log.read_text()[-3000:]
        pid = int((root / ".executor" / "jobs" / job / "1" / "pid").read_text())
        os.killpg(pid, 0)  # still alive: a clean stop does not touch running jobs
        proc = start_executor(node, root, harness.nats_url, log)
        done = await harness.wait(job, "finished", timeout=15)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert done.outcome is JobState.SUCCEEDED
    assert await harness.text(job, "stdout") == "done\n"
