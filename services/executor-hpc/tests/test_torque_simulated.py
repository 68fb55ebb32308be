"""The Torque adapter and the hpc executor against a Torque command SIMULATOR (tests/torque_sim.py):
no Torque server is packaged for Debian 12, so these tests say so in their names.

The ``torque`` flavour reads ``qstat -x`` (XML), as by default; ``test_torque_simulated_pbs_*`` run
the ``pbs`` flavour, which reads ``qstat -f`` text. Every command the executor runs is logged, so
the tests also check which qstat was asked and how often."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from jobwire.contracts.v1 import JobSpec, JobState, Resources, RunJob
from jobwire.execution.executor import RunStatus
from jobwire.execution.hpc import BatchSystem
from jobwire.execution.settings import ExecutorSettings
from jobwire.execution.transport.local import LocalTransport
from jobwire.executor_hpc.executor import HpcExecutor
from jobwire.executor_hpc.schedulers.torque import Pbs, Torque
from jobwire.executor_hpc.settings import HpcSettings

pytestmark = [pytest.mark.integration, pytest.mark.backend("torque-simulator")]
SIM = Path(__file__).parent / "torque_sim.py"


def make_executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, adapter: type[BatchSystem]) -> HpcExecutor:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("qsub", "qstat", "qdel", "qhold", "qrls"):
        link = bin_dir / name
        link.write_text(
            f'#!/bin/sh\necho "{name} $*" >> {tmp_path}/commands.log\n'
            f'TORQUE_SIM_CMD={name} exec {sys.executable} {SIM} "$@"\n'
        )
        link.chmod(0o755)
    monkeypatch.setenv("TORQUE_SIM_DIR", str(tmp_path / "sim"))
    settings = ExecutorSettings(node="torque-sim", root=str(tmp_path / "root"))
    hpc = HpcSettings(scheduler=adapter.name, poll_interval=0.1, accounting_wait=5)
    root = str(tmp_path / "root")
    return HpcExecutor(settings, LocalTransport(), root, adapter(bin_dir=str(bin_dir)), hpc)


@pytest.fixture
def executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HpcExecutor:
    return make_executor(tmp_path, monkeypatch, Torque)


def qstats(tmp_path: Path) -> list[list[str]]:
    """The qstat command lines run so far, as argv after ``qstat``."""
    log = tmp_path / "commands.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line.split()[1:] for line in lines if line.startswith("qstat ")]


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


def succeeds_with_exit_code_and_logs(ex: HpcExecutor) -> None:
    async def go() -> None:
        h = await ex.start(run_job(JobSpec(command=["sh", "-c", "echo out; echo err >&2; exit 4"])))
        assert h.details["batch_id"].endswith(".sim")
        status = await until_ended(ex, h)
        assert (status.ended, status.exit_code, status.outcome) == (True, 4, None)
        assert status.usage is not None and status.usage.node_list == ["localhost"]
        assert status.usage.max_rss_bytes == 1024 * 1024
        assert await ex.read_log(h, "stdout", 0, 100) == b"out\n"
        assert await ex.read_log(h, "stderr", 0, 100) == b"err\n"

    asyncio.run(go())


def test_torque_simulated_job_succeeds_with_exit_code_and_logs(executor: HpcExecutor, tmp_path: Path):
    succeeds_with_exit_code_and_logs(executor)
    assert qstats(tmp_path) and all(argv[0] == "-x" for argv in qstats(tmp_path))


def test_torque_simulated_pbs_flavour_reads_qstat_f_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    succeeds_with_exit_code_and_logs(make_executor(tmp_path, monkeypatch, Pbs))
    assert qstats(tmp_path) and all(argv[0] == "-f" for argv in qstats(tmp_path))


def test_torque_simulated_hostile_args_are_inert(executor: HpcExecutor, tmp_path: Path):
    """The simulator, like qsub, takes ``#PBS`` lines from the script it is given: a job whose args
    and env hold directive lines keeps jobwire's name and queue, and prints its text literally."""
    marker = tmp_path / "pwned"
    args = [f"$(touch {marker})", f"`touch {marker}`", "a'b", "x;touch " + str(marker)]
    args += ["hi\n#PBS -q root\n#PBS -N evil", "x\n#PBS -l nodes=8:ppn=64\n#PBS -o /etc/cron.d/jw"]
    evil = f"'; touch {marker}\n#PBS -q root"

    async def go() -> None:
        spec = JobSpec(
            command=["sh", "-c", 'printf "%s|" "$@"; printf "%s" "$E"', "sh", *args], env={"E": evil}
        )
        h = await executor.start(run_job(spec))
        status = await until_ended(executor, h)
        assert status.exit_code == 0
        assert await executor.read_log(h, "stdout", 0, 1000) == ("|".join(args) + "|" + evil).encode()
        [state] = (tmp_path / "sim").glob(f"{h.details['batch_id']}.json")
        job = json.loads(state.read_text())
        assert (job["name"], job["queue"], job["out"]) == ("jw-00000000000a-1", "batch", f"{h.ref}/stdout"), (
            job
        )
        assert "nodes" not in job["limits"] or job["limits"]["nodes"] == "1:ppn=1", job
        script = (Path(h.ref) / "batch.sh").read_text()
        assert not any(text in script for text in ("-q root", "evil", "nodes=8", "cron", "touch")), script

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


def test_torque_simulated_walltime_exceeded_is_timed_out(executor: HpcExecutor):
    async def go() -> None:
        spec = JobSpec(command=["sleep", "30"], resources=Resources(walltime=1))
        h = await executor.start(run_job(spec))
        status = await until_ended(executor, h)
        # the server's verdict (exit_status -11) decides the outcome; the code is the exit-code
        # file's when the wrapper wrote one before the server's TERM reached it too, else none
        assert status.outcome == JobState.TIMED_OUT and status.exit_code in (143, None), status
        assert "walltime" in (status.reason or "")

    asyncio.run(go())


def test_torque_simulated_queued_job_is_held_released_then_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TORQUE_SIM_QUEUE_SECONDS", "1.5")
    ex = make_executor(tmp_path, monkeypatch, Torque)

    async def status_of(h) -> RunStatus:  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.15)  # past poll_interval: a fresh qstat
        return (await ex.poll([h]))[h.key]

    async def go() -> None:
        h = await ex.start(run_job(JobSpec(command=["echo", "ran"])))
        queued = await status_of(h)
        assert (queued.running, queued.held, queued.pending_reason) == (False, False, "pending in torque: Q")
        await ex.hold(h, release=False)
        held = await status_of(h)
        assert (held.held, held.pending_reason) == (True, "held in torque: Hold_Types=u")
        await asyncio.sleep(2.0)  # longer than it would have queued: a held job does not start
        assert (await status_of(h)).held
        await ex.hold(h, release=True)
        status = await until_ended(ex, h)
        assert (status.exit_code, await ex.read_log(h, "stdout", 0, 100)) == (0, b"ran\n")

    asyncio.run(go())


def test_torque_simulated_one_qstat_lists_every_job(executor: HpcExecutor, tmp_path: Path):
    async def go() -> None:
        ids = [f"01a2b3c4-0000-7000-8000-0000000001{i:02d}" for i in range(10)]
        handles = [await executor.start(run_job(JobSpec(command=["sleep", "4"]), i)) for i in ids]
        before = len(qstats(tmp_path))
        await asyncio.sleep(0.15)
        seen = await executor.poll(handles)
        assert all(not s.ended for s in seen.values())
        lists = qstats(tmp_path)[before:]
        assert len(lists) == 1 and sorted(lists[0][1:]) == sorted(h.details["batch_id"] for h in handles)
        ended = [await until_ended(executor, h) for h in handles]
        assert [s.exit_code for s in ended] == [0] * len(handles)

    asyncio.run(go())
