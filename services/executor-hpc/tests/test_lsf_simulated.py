"""The LSF adapter and the hpc executor against an LSF command SIMULATOR (tests/lsf_sim.py): no LSF
can run here, so every test says so in its name. What the simulator answers is LSF 10.1's documented
output; the adapter's parsers get the shared adapter suite too (test_adapters.py)."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

import pytest

from jobwire.contracts.v1 import JobSpec, JobState, Resources, RunJob
from jobwire.execution.executor import RunHandle, RunStatus
from jobwire.execution.settings import ExecutorSettings
from jobwire.execution.transport.local import LocalTransport
from jobwire.executor_hpc.executor import HpcExecutor
from jobwire.executor_hpc.schedulers.lsf import Lsf
from jobwire.executor_hpc.settings import HpcSettings

pytestmark = [pytest.mark.integration, pytest.mark.backend("lsf-simulator")]
SIM = Path(__file__).parent / "lsf_sim.py"


@pytest.fixture
def executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HpcExecutor:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("bsub", "bjobs", "bkill", "bstop", "bresume"):
        link = bin_dir / name
        link.write_text(
            f'#!/bin/sh\necho "{name} $*" >> {tmp_path}/commands.log\n'
            f'LSF_SIM_CMD={name} exec {sys.executable} {SIM} "$@"\n'
        )
        link.chmod(0o755)
    monkeypatch.setenv("LSF_SIM_DIR", str(tmp_path / "sim"))
    monkeypatch.setenv("LSF_SIM_MINUTE", "1")  # -W minutes last a second each here
    settings = ExecutorSettings(node="lsf-sim", root=str(tmp_path / "root"))
    hpc = HpcSettings(scheduler="lsf", poll_interval=0.1, accounting_wait=5)
    return HpcExecutor(settings, LocalTransport(), str(tmp_path / "root"), Lsf(bin_dir=str(bin_dir)), hpc)


def commands(tmp_path: Path, name: str) -> list[list[str]]:
    log = tmp_path / "commands.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line.split()[1:] for line in lines if line.startswith(name + " ")]


def run_job(spec: JobSpec, job_id: str = "01a2b3c4-0000-7000-8000-00000000000b") -> RunJob:
    return RunJob(job_id=job_id, attempt=1, node="lsf-sim", spec=spec)


async def until_ended(ex: HpcExecutor, handle, timeout: float = 20.0) -> RunStatus:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = (await ex.poll([handle]))[handle.key]
        if status.ended:
            return status
        await asyncio.sleep(0.1)
    raise AssertionError("the simulated job did not end")


def test_lsf_simulated_job_runs_with_exit_code_logs_usage_and_directives(
    executor: HpcExecutor, tmp_path: Path
):
    async def go() -> None:
        spec = JobSpec(
            command=["sh", "-c", 'echo "out $JOBWIRE_ATTEMPT"; echo err >&2; exit 4'],
            resources=Resources(cpus=2, memory="1G", walltime=600),
        )
        h = await executor.start(run_job(spec))
        status = await until_ended(executor, h)
        assert (status.ended, status.exit_code, status.outcome) == (True, 4, None)
        assert await executor.read_log(h, "stdout", 0, 100) == b"out 1\n"
        assert await executor.read_log(h, "stderr", 0, 100) == b"err\n"
        assert status.usage is not None and status.usage.max_rss_bytes == 2 * 1024 * 1024
        script = (Path(h.ref) / "batch.sh").read_text()
        for line in ("#BSUB -n 2", "#BSUB -W 10", "#BSUB -M 1024MB", f"#BSUB -cwd {h.ref}"):
            assert line + "\n" in script, script

    asyncio.run(go())
    assert commands(tmp_path, "bsub") == [[]]  # the script went on stdin, where LSF reads #BSUB lines


def test_lsf_simulated_one_bjobs_lists_every_job(executor: HpcExecutor, tmp_path: Path):
    async def go() -> None:
        ids = [f"01a2b3c4-0000-7000-8000-0000000002{i:02d}" for i in range(5)]
        handles = [await executor.start(run_job(JobSpec(command=["sleep", "2"]), i)) for i in ids]
        before = len(commands(tmp_path, "bjobs"))
        await asyncio.sleep(0.15)
        await executor.poll(handles)
        lists = [c for c in commands(tmp_path, "bjobs")[before:] if "pend_reason" in " ".join(c)]
        [listed] = lists  # one list for all five (accounting, if any ended, is a call of its own)
        assert sorted(listed[-5:]) == sorted(h.details["batch_id"] for h in handles)
        ended = [await until_ended(executor, h) for h in handles]
        assert [s.exit_code for s in ended] == [0] * 5

    asyncio.run(go())


def test_lsf_simulated_hostile_args_and_env_are_inert(executor: HpcExecutor, tmp_path: Path):
    """bsub reads ``#BSUB`` lines from the script on its stdin: a job whose args and env hold such
    lines keeps jobwire's name and output path, and prints its text literally."""
    args = ["hi\n#BSUB -q root\n#BSUB -J evil", "x\n#BSUB -o /etc/cron.d/jw\n#BSUB -n 64"]
    evil = "ok\n#BSUB -cwd /etc"

    async def go() -> None:
        spec = JobSpec(
            command=["sh", "-c", 'printf "%s|" "$@"; printf "%s" "$E"', "sh", *args], env={"E": evil}
        )
        h = await executor.start(run_job(spec))
        status = await until_ended(executor, h)
        assert status.exit_code == 0, await executor.read_log(h, "stderr", 0, 1000)
        assert await executor.read_log(h, "stdout", 0, 1000) == ("|".join(args) + "|" + evil).encode()
        [state] = [p for p in (tmp_path / "sim").glob("*.json") if h.details["batch_id"] in p.name]
        opts = json.loads(state.read_text())["opts"]
        assert (opts["-J"], opts["-o"], opts["-cwd"], opts["-n"]) == (
            "jw-00000000000b-1",
            f"{h.ref}/stdout",
            h.ref,
            "1",
        )
        assert "-q" not in opts, opts
        script = (Path(h.ref) / "batch.sh").read_text()
        assert not any(text in script for text in ("-q root", "evil", "cron", "-n 64", "-cwd /etc")), script

    asyncio.run(go())


def test_lsf_simulated_cancel_and_readoption(executor: HpcExecutor):
    async def go() -> None:
        h = await executor.start(run_job(JobSpec(command=["sleep", "30"])))
        await asyncio.sleep(0.5)
        [again] = await executor.adopt()
        assert again.details["batch_id"] == h.details["batch_id"]
        await executor.signal(h, signal.SIGTERM)
        status = await until_ended(executor, h)
        assert status.ended and status.outcome is JobState.CANCELLED, status
        await executor.signal(h, signal.SIGKILL)  # bkill of a finished job counts as killed

    asyncio.run(go())


def test_lsf_simulated_run_limit_is_timed_out(executor: HpcExecutor):
    async def go() -> None:
        h = await executor.start(run_job(JobSpec(command=["sleep", "30"], resources=Resources(walltime=1))))
        status = await until_ended(executor, h)
        assert status.outcome is JobState.TIMED_OUT and "TERM_RUNLIMIT" in (status.reason or ""), status

    asyncio.run(go())


def test_lsf_simulated_pending_job_is_held_released_then_runs(
    executor: HpcExecutor, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("LSF_SIM_PEND_SECONDS", "1.5")

    async def status_of(h) -> RunStatus:  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.15)
        return (await executor.poll([h]))[h.key]

    async def go() -> None:
        h = await executor.start(run_job(JobSpec(command=["echo", "ran"])))
        pending = await status_of(h)
        assert (pending.running, pending.held) == (False, False)
        assert pending.pending_reason == "pending in lsf: New job is waiting for scheduling"
        await executor.hold(h, release=False)
        assert (await status_of(h)).held
        await asyncio.sleep(2.0)  # longer than it would have pended: a held job does not start
        assert (await status_of(h)).held
        await executor.hold(h, release=True)
        status = await until_ended(executor, h)
        assert (status.exit_code, await executor.read_log(h, "stdout", 0, 100)) == (0, b"ran\n")

    asyncio.run(go())


def array_runs(spec: JobSpec, count: int, parallelism: int) -> list[RunJob]:
    return [
        RunJob(
            job_id=f"01a2b3c4-0000-7000-8000-0000000003{i:02d}",
            attempt=1,
            node="lsf-sim",
            spec=spec,
            array_id="01a2b3c4-0000-7000-8000-0000000000b0",
            array_index=i,
            array_count=count,
            array_parallelism=parallelism,
        )
        for i in range(count)
    ]


def most_at_once(lines: list[str]) -> int:
    """The most tasks between their ``s INDEX NS`` and ``e INDEX NS`` lines at any moment."""
    marks = sorted((int(ns), -1 if kind == "e" else 1) for kind, _, ns in (ln.split() for ln in lines))
    return max(sum(step for _, step in marks[: k + 1]) for k in range(len(marks)))


def test_lsf_simulated_native_array_is_one_bsub_with_a_slot_limit(executor: HpcExecutor, tmp_path: Path):
    """An array's tasks sent together are ONE ``bsub`` of ``#BSUB -J "NAME[1-6]%2"``; each element runs
    its own task (LSB_JOBINDEX -> its directory), at most 2 at once, with its own exit code and logs,
    and is listed, accounted and found again (by the array's name) as ``101[N]``."""
    trace = tmp_path / "trace"
    stamp = f'echo "$1 $JOBWIRE_ARRAY_INDEX $(date +%s%N)" >> {trace}'
    show = 'echo "$JOBWIRE_ARRAY_INDEX=$LSB_JOBINDEX"; exit $((JOBWIRE_ARRAY_INDEX == 4))'
    script = f"set -- s; {stamp}; sleep 0.5; set -- e; {stamp}; {show}"
    runs = array_runs(JobSpec(command=["sh", "-c", script]), 6, 2)

    async def go() -> None:
        assert executor.capacity().native_arrays
        handles = [h for h in await executor.start_array(runs) if not isinstance(h, BaseException)]
        assert [h.details["batch_id"] for h in handles] == [f"101[{i + 1}]" for i in range(6)]
        array_sh = (Path(handles[0].ref) / "array.sh").read_text()
        assert '#BSUB -J "jw-000000000300-1[1-6]%2"\n' in array_sh, array_sh
        assert await executor.scheduler.find(executor.transport, "jw-000000000300-1") == ["101"]
        await asyncio.sleep(0.15)
        await executor.poll(handles)
        listed = [c for c in commands(tmp_path, "bjobs") if "pend_reason" in c][-1]
        assert listed[-6:] == [f"101[{i + 1}]" for i in range(6)]  # one call names every element
        for i, h in enumerate(handles):
            status = await until_ended(executor, h)
            assert status.exit_code == (1 if i == 4 else 0), (i, status)
            assert await executor.read_log(h, "stdout", 0, 100) == f"{i}={i + 1}\n".encode()

    asyncio.run(go())
    assert commands(tmp_path, "bsub") == [[]]
    lines = trace.read_text().splitlines()
    assert len(lines) == 12 and most_at_once(lines) <= 2, lines


def test_lsf_simulated_native_element_cancel_and_whole_array_cancel(executor: HpcExecutor, tmp_path: Path):
    runs = array_runs(JobSpec(command=["sleep", "60"]), 4, 2)

    async def go() -> None:
        handles = [h for h in await executor.start_array(runs) if not isinstance(h, BaseException)]
        await executor.poll(handles)
        await executor.signal(handles[0], signal.SIGTERM)  # one task
        await executor.natives.settled()
        assert (await until_ended(executor, handles[0])).outcome is JobState.CANCELLED
        rest = handles[1:]
        await executor.poll(rest)
        await asyncio.gather(*(executor.signal(h, signal.SIGTERM) for h in rest))  # the array's cancel
        for h in rest:
            assert (await until_ended(executor, h)).outcome is JobState.CANCELLED

    asyncio.run(go())
    assert commands(tmp_path, "bkill") == [["101[1]"], ["101"]]


def test_lsf_simulated_second_native_job_of_an_array_waits_for_the_first(
    executor: HpcExecutor, tmp_path: Path
):
    """A later chunk of the array is submitted with ``-w "ended(101)"``: it pends for its dependency
    (not held) and starts only once every element of the first has ended."""
    trace = tmp_path / "trace"
    stamp = f'echo "$1 $JOBWIRE_ARRAY_INDEX $(date +%s%N)" >> {trace}'
    runs = array_runs(JobSpec(command=["sh", "-c", f"set -- s; {stamp}; sleep 1; set -- e; {stamp}"]), 4, 1)

    async def go() -> None:
        first = [h for h in await executor.start_array(runs[:2]) if not isinstance(h, BaseException)]
        second = [h for h in await executor.start_array(runs[2:]) if not isinstance(h, BaseException)]
        ids = [h.details["batch_id"] for h in first + second]
        assert ids == ["101[1]", "101[2]", "102[1]", "102[2]"]
        assert '#BSUB -w "ended(101)"\n' in (Path(second[0].ref) / "array.sh").read_text()
        await asyncio.sleep(0.15)
        waiting = await executor.poll(second)
        for h in second:
            status = waiting[h.key]
            assert (status.running, status.held) == (False, False), status
            assert status.pending_reason == "pending in lsf: Job dependency condition not satisfied"
        for h in first + second:
            assert (await until_ended(executor, h)).exit_code == 0

    asyncio.run(go())
    lines = trace.read_text().splitlines()
    marks = {(kind, int(index)): int(ns) for kind, index, ns in (ln.split() for ln in lines)}
    assert len(marks) == 8, lines
    assert max(marks["e", i] for i in (0, 1)) <= min(marks["s", i] for i in (2, 3)), lines
    assert most_at_once(lines) == 1, lines


def test_lsf_simulated_array_hold_names_its_waiting_elements_in_one_bstop(
    executor: HpcExecutor, tmp_path: Path
):
    """The array's hold (each waiting element asked, the running one left out) is ONE ``bstop
    "101[...]"`` naming the waiting elements (``bstop 101`` would suspend the running one); they do
    not start when it ends, and ONE ``bresume`` of the same list lets them run."""
    go = tmp_path / "go"
    trace = tmp_path / "trace"
    script = f'echo "$JOBWIRE_ARRAY_INDEX" >> {trace}; until [ -e {go} ]; do sleep 0.1; done'
    runs = array_runs(JobSpec(command=["sh", "-c", script]), 4, 1)

    async def until(check, what: str, timeout: float = 30.0):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await asyncio.sleep(0.15)
            if got := await check():
                return got
        raise AssertionError(f"timed out waiting for {what}")

    async def go_() -> None:
        handles = [h for h in await executor.start_array(runs) if not isinstance(h, BaseException)]

        async def one_runs() -> list[RunHandle] | None:
            seen = await executor.poll(handles)
            up = [h for h in handles if seen[h.key].running]
            return up if len(up) == 1 else None

        [first] = await until(one_runs, "one element running")
        waiting = [h for h in handles if h is not first]
        indices = ",".join(str(h.details["batch_id"])[4:-1] for h in waiting)
        await asyncio.gather(*(executor.hold(h, release=False) for h in waiting))
        await executor.natives.settled()
        assert commands(tmp_path, "bstop") == [[f"101[{indices}]"]]

        async def all_held() -> bool:
            seen = await executor.poll(handles)
            return all(seen[h.key].held for h in waiting) and bool(seen[first.key].running)

        await until(all_held, "the waiting elements held, the first running")
        go.touch()
        assert (await until_ended(executor, first)).exit_code == 0
        await asyncio.sleep(1.5)  # past when the next would have started: held elements stay held
        seen = await executor.poll(waiting)
        assert all(seen[h.key].held for h in waiting), seen
        assert trace.read_text().split() == [str(first.run.array_index)]
        await asyncio.gather(*(executor.hold(h, release=True) for h in waiting))
        await executor.natives.settled()
        assert commands(tmp_path, "bresume") == [[f"101[{indices}]"]]
        for h in waiting:
            assert (await until_ended(executor, h)).exit_code == 0

    asyncio.run(go_())
    assert sorted(trace.read_text().split()) == ["0", "1", "2", "3"]
