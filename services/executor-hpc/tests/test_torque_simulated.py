"""The Torque adapter and the hpc executor against a Torque command SIMULATOR (tests/torque_sim.py):
no Torque server is packaged for Debian 12, so these tests say so in their names."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from jobwire.contracts.v1 import JobSpec, JobState, RunJob
from jobwire.execution.executor import RunStatus
from jobwire.execution.settings import ExecutorSettings
from jobwire.execution.transport.local import LocalTransport
from jobwire.executor_hpc.executor import HpcExecutor
from jobwire.executor_hpc.schedulers.torque import Torque
from jobwire.executor_hpc.settings import HpcSettings

pytestmark = [pytest.mark.integration, pytest.mark.backend("torque-simulator")]
SIM = Path(__file__).parent / "torque_sim.py"


@pytest.fixture
def executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HpcExecutor:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("qsub", "qstat", "qdel"):
        link = bin_dir / name
        link.write_text(f'#!/bin/sh\nTORQUE_SIM_CMD={name} exec {sys.executable} {SIM} "$@"\n')
        link.chmod(0o755)
    monkeypatch.setenv("TORQUE_SIM_DIR", str(tmp_path / "sim"))
    settings = ExecutorSettings(node="torque-sim", root=str(tmp_path / "root"))
    hpc = HpcSettings(scheduler="torque", poll_interval=0.1, accounting_wait=5)
    return HpcExecutor(settings, LocalTransport(), str(tmp_path / "root"), Torque(bin_dir=str(bin_dir)), hpc)


def run_job(spec: JobSpec, job_id: str = "01a2b3c4-0000-7000-8000-00000000000a") -> RunJob:
    return RunJob(job_id=job_id, attempt=1, node="torque-sim", spec=spec)


async def until_ended(ex: HpcExecutor, handle, timeout: float = 20.0) -> RunStatus:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = (await ex.poll([handle]))[handle.key]
        if status.ended:
            return status
        await asyncio.sleep(0.1)
    raise AssertionError("the simulated job did not end")


def test_torque_simulated_job_succeeds_with_exit_code_and_logs(executor: HpcExecutor):
    async def go() -> None:
        h = await executor.start(run_job(JobSpec(command=["sh", "-c", "echo out; echo err >&2; exit 4"])))
        assert h.details["batch_id"].endswith(".sim")
        status = await until_ended(executor, h)
        assert (status.ended, status.exit_code, status.outcome) == (True, 4, None)
        assert status.usage is not None and status.usage.node_list == ["localhost"]
        assert await executor.read_log(h, "stdout", 0, 100) == b"out\n"
        assert await executor.read_log(h, "stderr", 0, 100) == b"err\n"

    asyncio.run(go())


def test_torque_simulated_hostile_args_are_inert(executor: HpcExecutor, tmp_path: Path):
    marker = tmp_path / "pwned"
    args = [f"$(touch {marker})", f"`touch {marker}`", "a'b", "x;touch " + str(marker)]

    async def go() -> None:
        h = await executor.start(
            run_job(JobSpec(command=["printf", "%s|", *args], env={"E": f"'; touch {marker}"}))
        )
        status = await until_ended(executor, h)
        assert status.exit_code == 0
        assert await executor.read_log(h, "stdout", 0, 1000) == ("|".join(args) + "|").encode()

    asyncio.run(go())
    assert not marker.exists()


def test_torque_simulated_cancel_and_readoption(executor: HpcExecutor):
    async def go() -> None:
        h = await executor.start(run_job(JobSpec(command=["sleep", "30"])))
        await asyncio.sleep(0.5)
        [again] = await executor.adopt()
        assert again.details["batch_id"] == h.details["batch_id"]
        await executor.signal(h, signal.SIGTERM)
        status = await until_ended(executor, h)
        assert status.ended and status.exit_code == 143, status

    asyncio.run(go())


def test_torque_simulated_job_gone_from_qstat_ends_from_exit_code_file(executor: HpcExecutor):
    async def go() -> None:
        h = await executor.start(run_job(JobSpec(command=["sh", "-c", "exit 6"])))
        # The server forgets it (no keep_completed): only the exit-code file is left.
        await asyncio.sleep(1.0)
        sim = Path(os.environ["TORQUE_SIM_DIR"])
        (sim / f"{h.details['batch_id']}.json").unlink()
        status = await until_ended(executor, h)
        assert (status.exit_code, status.outcome) == (6, None)

    asyncio.run(go())
    assert JobState.TIMED_OUT  # the walltime case is covered by the recorded qstat -f output
