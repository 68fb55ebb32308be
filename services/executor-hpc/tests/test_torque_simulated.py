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
from jobwire.execution.executor import RunHandle, RunStatus
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


def array_runs(spec: JobSpec, count: int, parallelism: int) -> list[RunJob]:
    array_id = "01a2b3c4-0000-7000-8000-0000000000a0"
    return [
        RunJob(
            job_id=f"01a2b3c4-0000-7000-8000-0000000001{i:02d}",
            attempt=1,
            node="torque-sim",
            spec=spec,
            array_id=array_id,
            array_index=i,
            array_count=count,
            array_parallelism=parallelism,
        )
        for i in range(count)
    ]


def test_torque_simulated_native_array_is_one_qsub_with_a_slot_limit(executor: HpcExecutor, tmp_path: Path):
    """An array's tasks sent together are ONE ``qsub`` of ``#PBS -t 0-5%2``; each sub-job runs its own
    task (PBS_ARRAYID -> its directory), at most 2 at once, with its own exit code and logs."""
    trace = tmp_path / "trace"
    stamp = f'echo "$1 $JOBWIRE_ARRAY_INDEX $(date +%s%N)" >> {trace}'
    show = 'echo "$JOBWIRE_ARRAY_INDEX=$PBS_ARRAYID"; exit $((JOBWIRE_ARRAY_INDEX == 4))'
    script = f"set -- s; {stamp}; sleep 0.5; set -- e; {stamp}; {show}"
    runs = array_runs(JobSpec(command=["sh", "-c", script]), 6, 2)

    async def go() -> None:
        assert executor.capacity().native_arrays
        handles = await executor.start_array(runs)
        assert not [h for h in handles if isinstance(h, BaseException)], handles
        ids = [h.details["batch_id"] for h in handles]  # type: ignore[union-attr]
        assert ids == [f"1[{i}].sim" for i in range(6)]
        for i, h in enumerate(handles):
            status = await until_ended(executor, h)
            assert status.exit_code == (1 if i == 4 else 0), (i, status)
            assert await executor.read_log(h, "stdout", 0, 100) == f"{i}={i}\n".encode()  # type: ignore[arg-type]

    asyncio.run(go())
    submits = [
        line for line in (tmp_path / "commands.log").read_text().splitlines() if line.startswith("qsub ")
    ]
    assert len(submits) == 1
    lines = trace.read_text().splitlines()
    marks = sorted((int(ns), -1 if kind == "e" else 1) for kind, _, ns in (ln.split() for ln in lines))
    running = [sum(step for _, step in marks[: k + 1]) for k in range(len(marks))]
    assert len(lines) == 12 and max(running) <= 2, lines


def test_torque_simulated_native_task_cancel_and_whole_array_cancel(executor: HpcExecutor, tmp_path: Path):
    runs = array_runs(JobSpec(command=["sleep", "60"]), 4, 2)

    async def go() -> None:
        handles = [h for h in await executor.start_array(runs) if not isinstance(h, BaseException)]
        await executor.poll(handles)
        await executor.signal(handles[0], signal.SIGTERM)  # one task
        assert (await until_ended(executor, handles[0])).ended
        rest = handles[1:]
        await executor.poll(rest)
        await asyncio.gather(*(executor.signal(h, signal.SIGTERM) for h in rest))  # the array's cancel
        for h in rest:
            assert (await until_ended(executor, h)).ended

    asyncio.run(go())
    qdels = [
        line for line in (tmp_path / "commands.log").read_text().splitlines() if line.startswith("qdel ")
    ]
    assert qdels == ["qdel 1[0].sim", "qdel 1[].sim"]


def test_torque_simulated_second_native_job_of_an_array_waits_for_the_first(
    executor: HpcExecutor, tmp_path: Path
):
    """A chunk of an array dispatched while an earlier native job of it still runs (a retried task, a
    second round) is submitted with ``-W depend=afteranyarray:<first>``: Torque holds it (``H``,
    ``Hold_Types=s``), jobwire shows it pending for its dependency (not held), and it starts only once
    every sub-job of the first has ended, so the array's parallelism holds across both."""
    trace = tmp_path / "trace"
    stamp = f'echo "$1 $JOBWIRE_ARRAY_INDEX $(date +%s%N)" >> {trace}'
    script = f"set -- s; {stamp}; sleep 1; set -- e; {stamp}"
    runs = array_runs(JobSpec(command=["sh", "-c", script]), 4, 1)

    async def go() -> None:
        first = [h for h in await executor.start_array(runs[:2]) if not isinstance(h, BaseException)]
        second = [h for h in await executor.start_array(runs[2:]) if not isinstance(h, BaseException)]
        ids = [h.details["batch_id"] for h in first + second]
        assert ids == ["1[0].sim", "1[1].sim", "2[0].sim", "2[1].sim"]
        assert "#PBS -W depend=afteranyarray:1[].sim\n" in (Path(second[0].ref) / "array.sh").read_text()
        assert "depend" not in (Path(first[0].ref) / "array.sh").read_text()
        await asyncio.sleep(0.15)
        waiting = await executor.poll(second)
        for h in second:
            status = waiting[h.key]
            assert (status.running, status.held) == (False, False), status
            why = "waiting for its dependency (afteranyarray:1[].sim@sim)"
            assert status.pending_reason == f"pending in torque: {why}"
        for h in first + second:
            assert (await until_ended(executor, h)).exit_code == 0

    asyncio.run(go())
    lines = trace.read_text().splitlines()
    marks = {(kind, int(index)): int(ns) for kind, index, ns in (ln.split() for ln in lines)}
    assert len(marks) == 8, lines
    assert max(marks["e", i] for i in (0, 1)) <= min(marks["s", i] for i in (2, 3)), lines
    ordered = sorted((ns, -1 if kind == "e" else 1) for (kind, _), ns in marks.items())
    assert max(sum(step for _, step in ordered[: k + 1]) for k in range(len(ordered))) == 1, lines


def commands(tmp_path: Path, name: str) -> list[str]:
    """The command lines of ``name`` run so far."""
    log = tmp_path / "commands.log"
    return [ln for ln in log.read_text().splitlines() if ln.startswith(name + " ")] if log.exists() else []


def test_torque_simulated_array_hold_and_release_are_one_command_each(executor: HpcExecutor, tmp_path: Path):
    """One waiting task's hold is ``qhold 1[N].sim``; the array's hold (every waiting task asked
    together, the running one left out as the service leaves it) is ONE ``qhold 1[].sim``, which
    Torque records on the running sub-job too without stopping it; the held tasks do not start when
    the running one ends, and ONE ``qrls 1[].sim`` lets them all run."""
    go = tmp_path / "go"
    trace = tmp_path / "trace"
    script = f'echo "$JOBWIRE_ARRAY_INDEX" >> {trace}; until [ -e {go} ]; do sleep 0.1; done'
    runs = array_runs(JobSpec(command=["sh", "-c", script]), 4, 1)

    async def until(check, what: str, timeout: float = 30.0):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await asyncio.sleep(0.15)  # past poll_interval: a fresh qstat
            if got := await check():
                return got
        raise AssertionError(f"timed out waiting for {what}")

    async def go_() -> None:
        handles = [h for h in await executor.start_array(runs) if not isinstance(h, BaseException)]

        async def one_runs() -> list[RunHandle] | None:
            seen = await executor.poll(handles)
            up = [h for h in handles if seen[h.key].running]
            return up if len(up) == 1 else None  # the slot limit: whichever sub-job took the slot

        [first] = await until(one_runs, "one task running")
        waiting = [h for h in handles if h is not first]
        lone = waiting[-1].details["batch_id"]
        await executor.hold(waiting[-1], release=False)
        await executor.natives.settled()
        await executor.hold(waiting[-1], release=True)
        await executor.natives.settled()
        assert commands(tmp_path, "qhold") == [f"qhold {lone}"]
        assert commands(tmp_path, "qrls") == [f"qrls {lone}"]
        await asyncio.gather(*(executor.hold(h, release=False) for h in waiting))  # the array's hold
        await executor.natives.settled()
        assert commands(tmp_path, "qhold")[1:] == ["qhold 1[].sim"]

        async def all_held() -> bool:
            seen = await executor.poll(handles)
            return all(seen[h.key].held for h in waiting) and bool(seen[first.key].running)

        await until(all_held, "the waiting tasks held, the first running")
        go.touch()
        assert (await until_ended(executor, first)).exit_code == 0
        await asyncio.sleep(1.5)  # past when task 1 would have started: held tasks stay held
        seen = await executor.poll(waiting)
        assert all(seen[h.key].held for h in waiting), seen
        assert trace.read_text().split() == [str(first.run.array_index)]
        await asyncio.gather(*(executor.hold(h, release=True) for h in waiting))  # the array's release
        await executor.natives.settled()
        assert commands(tmp_path, "qrls")[1:] == ["qrls 1[].sim"]
        for h in waiting:
            assert (await until_ended(executor, h)).exit_code == 0

    asyncio.run(go_())
    assert sorted(trace.read_text().split()) == ["0", "1", "2", "3"]
    assert len(commands(tmp_path, "qhold")) == 2 and len(commands(tmp_path, "qrls")) == 2


def test_torque_simulated_no_native_array_when_jobs_run_as_their_owner(executor: HpcExecutor):
    """One native job has one submitter: a node that runs jobs as their owners' accounts says no
    native arrays, and tasks sent together are submitted one job each."""
    from jobwire.execution.accounts import Account, RunAs

    class NoAccounts(RunAs):
        """run-as ``owner`` whose jobs map to no account here: accounts are not what this test is
        about (test_run_as_batch submits as real ones), one job per task is."""

        async def ensure(self, owner: str) -> Account | None:
            return None

    executor.run_as = NoAccounts(mode="owner")
    assert not executor.capacity().native_arrays

    async def go() -> None:
        handles = await executor.start_array(array_runs(JobSpec(command=["true"]), 2, 1))
        assert [h.details["batch_id"] for h in handles] == ["1.sim", "2.sim"]  # type: ignore[union-attr]

    asyncio.run(go())


def test_torque_simulated_attempts_of_an_older_layout_are_moved_once_even_after_a_crash(
    executor: HpcExecutor, tmp_path: Path
):
    """An executor before issue 16's one layout kept run.json, batch_id, state.json at the top of
    the job's directory. The restarted executor moves them to its own tree and adopts the job; a move
    a crash cut short (batch_id already moved, run.json, which goes last, not) is finished the next
    time; a link by a bookkeeping name is never taken, and files by those names in the directory of
    an attempt this executor laid out are the job's own, left alone."""
    root = tmp_path / "root"

    async def go() -> None:
        h = await executor.start(run_job(JobSpec(command=["sh", "-c", "sleep 1; echo out; exit 3"])))
        mine = await executor.start(
            run_job(JobSpec(command=["sleep", "30"]), "01a2b3c4-0000-7000-8000-00000000000b")
        )
        own, job = root / ".executor" / "jobs" / h.run.job_id / "1", root / "jobs" / h.run.job_id / "1"
        for name in ("run.json", "submitting"):  # batch_id was moved before the crash
            (own / name).rename(job / name)
        (job / "state.json").write_text("{}")
        (job / "signal").symlink_to(tmp_path / "elsewhere")
        job_files = Path(mine.ref)
        (job_files / "run.json").write_text("the job's own")
        (job_files / "state.json").write_text("the job's own")
        ex = executor
        again = HpcExecutor(ex.settings, ex.transport, str(root), ex.scheduler, ex.hpc)
        adopted = {a.details["batch_id"]: a for a in await again.adopt()}
        assert set(adopted) == {h.details["batch_id"], mine.details["batch_id"]}
        assert sorted(p.name for p in own.iterdir()) == ["batch_id", "run.json", "state.json", "submitting"]
        assert {"run.json", "batch_id", "submitting", "state.json"}.isdisjoint(p.name for p in job.iterdir())
        assert (job / "signal").is_symlink()  # left alone, never read as the executor's
        assert (
            (job_files / "run.json").read_text() == (job_files / "state.json").read_text() == "the job's own"
        )
        twice = await again.adopt()  # nothing left to move: the same attempts, the same files
        assert sorted(a.details["batch_id"] for a in twice) == sorted(adopted)
        status = await until_ended(again, adopted[h.details["batch_id"]])
        assert (status.ended, status.exit_code) == (True, 3), status
        assert await again.read_log(adopted[h.details["batch_id"]], "stdout", 0, 100) == b"out\n"
        await again.signal(adopted[mine.details["batch_id"]], signal.SIGTERM)

    asyncio.run(go())
