"""Raw ``sbatch`` / ``qsub`` beside jobwire's executor-hpc on the project's test SLURM and SGE
(tests/fixtures/slurm.py, sge-up.sh).

The batch system is started only when it is installed here and we are root, under the shared backends
lock (the tests' SLURM, SGE and Docker runs hold it too; ``BENCH_SLURM_LOCK_WAIT`` seconds, then skipped).
The same no-op jobs both ways: submits/s (one ``sbatch`` after the other, or jobwire's HTTP submits over 8
connections) and jobs/s from the first submit to the last job gone from the queue (or succeeded in
jobwire). The executor runs with ``BENCH_HPC_POLL_INTERVAL`` (1 s, its default) between list calls and
counts the batch system commands it ran, so the document says where its extra time went.

    python -m benchmarks.slurm_bench slurm 200
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from jobwire.stack.processes import free_port
from jobwire.stack.stack import ExecutorConfig, Stack, StackConfig

LOCK = "/tmp/jobwire-backends.lock"  # noqa: S108 - the shared lock every backend run takes
POLL = os.environ.get("BENCH_HPC_POLL_INTERVAL", "1.0")
SGE_BIN = "/usr/lib/gridengine"
SGE_ENV = {"SGE_ROOT": "/var/lib/gridengine", "SGE_CELL": "default"}
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
#: the no-op job, with no time limit that raw ``qsub``/``sbatch`` do not have: ``expected_runtime`` 1
#: gave a 2 s timeout from the job's start, and on a loaded machine a third of the jobs were qdel'ed
#: as timed out (finishing sooner than a job that runs to its end, and not succeeded)
HPC_NOOP: dict[str, Any] = {"command": ["true"], "expected_runtime": 60}


def _take_lock(wait: float) -> int | None:
    """The shared lock, waited for in line with the tests' ``flock`` (a blocking request, not a retry
    loop that every blocked waiter overtakes), for at most ``wait`` seconds."""
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o666)

    def give_up(signum: int, frame: object) -> None:
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.setitimer(signal.ITIMER_REAL, max(wait, 0.01))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd
    except TimeoutError:
        os.close(fd)
        return None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _until_gone(listed: Callable[[set[str]], set[str]], ids: list[str], t0: float) -> float:
    """Seconds from ``t0`` until none of ``ids`` is listed any more (polled every 0.1 s)."""
    pending = set(ids)
    while pending:
        pending &= listed(pending)
        if time.perf_counter() - t0 > 600:
            raise TimeoutError(f"{len(pending)} raw batch jobs still queued after 600 s")
        if pending:
            time.sleep(0.1)
    return time.perf_counter() - t0


def raw_sbatch(env: dict[str, str], jobs: int, workdir: Path) -> dict[str, Any]:
    full = {**os.environ, **env}
    ids: list[str] = []
    t0 = time.perf_counter()
    for _ in range(jobs):
        out = subprocess.run(
            ["sbatch", "--parsable", "--wrap=true", f"--chdir={workdir}", "--output=/dev/null"],
            env=full,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        ids.append(out.stdout.strip().split(";")[0])
    submitted = time.perf_counter() - t0

    def listed(pending: set[str]) -> set[str]:
        argv = ["squeue", "-h", "-o", "%i", "-j", ",".join(sorted(pending))]
        out = subprocess.run(argv, env=full, capture_output=True, text=True, check=False, timeout=60)
        return set(out.stdout.split())

    done = _until_gone(listed, ids, t0)
    return {
        "command": "sbatch --parsable --wrap=true, one after the other",
        "jobs": jobs,
        "submits_per_s": round(jobs / submitted, 1),
        "jobs_per_s": round(jobs / done, 1),
    }


def raw_qsub(env: dict[str, str], jobs: int, workdir: Path) -> dict[str, Any]:
    full = {**os.environ, **env}
    qsub, qstat = f"{SGE_BIN}/qsub", f"{SGE_BIN}/qstat"
    ids: list[str] = []
    t0 = time.perf_counter()
    for _ in range(jobs):
        out = subprocess.run(
            [qsub, "-terse", "-b", "y", "-wd", str(workdir), "-o", "/dev/null", "-e", "/dev/null", "true"],
            env=full,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        ids.append(out.stdout.strip().split(".")[0])
    submitted = time.perf_counter() - t0

    def listed(pending: set[str]) -> set[str]:
        argv = [qstat, "-u", "*"]
        out = subprocess.run(argv, env=full, capture_output=True, text=True, check=False, timeout=60)
        return {line.split()[0] for line in out.stdout.splitlines()[2:] if line.split()}

    done = _until_gone(listed, ids, t0)
    return {
        "command": "qsub -b y true, one after the other",
        "jobs": jobs,
        "submits_per_s": round(jobs / submitted, 1),
        "jobs_per_s": round(jobs / done, 1),
    }


#: the batch system's commands the executor may run, traced when ``BENCH_HPC_TRACE=1``
TRACED = {
    "slurm": ("sbatch", "squeue", "sacct", "scancel", "scontrol"),
    "sge": ("qsub", "qstat", "qacct", "qdel", "qhold", "qrls", "qalter"),
}


def tracing_bin(dest: Path, log: Path, kind: str, real_dir: str) -> Path:
    """A bin dir whose every batch command appends its start, end and name to ``log`` (one fork of
    ``date`` on each side: a profile, not the benchmark's figure)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in TRACED[kind]:
        target = dest / name
        target.write_text(
            f'#!/bin/sh\nt0=$(date +%s.%N)\n{real_dir}/{name} "$@"\nrc=$?\n'
            f'echo "$t0 $(date +%s.%N) {name}" >> "{log}"\nexit $rc\n'
        )
        target.chmod(0o755)
    return dest


def trace_summary(log: Path, t0_wall: float) -> dict[str, Any]:
    """Per command: calls, total and mean seconds, first and last start after ``t0_wall``."""
    out: dict[str, dict[str, float]] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        start, end, name = line.split()
        s = out.setdefault(name, {"calls": 0, "seconds": 0.0, "first_s": float(start) - t0_wall})
        s["calls"] += 1
        s["seconds"] += float(end) - float(start)
        s["last_end_s"] = float(end) - t0_wall
    for s in out.values():
        s["mean_ms"] = round(1000 * s["seconds"] / s["calls"], 1)
        for k in ("seconds", "first_s", "last_end_s"):
            s[k] = round(s[k], 2)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` so far (its children's not included: the batch commands are timed
    by the trace)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def through_jobwire(kind: str, env: dict[str, str], jobs: int, home: Path) -> dict[str, Any]:
    """The same jobs through gateway, scheduler and one executor-hpc driving the same cluster."""
    from benchmarks.e2e import Watcher, submit_burst

    node = f"hpc-{kind}"
    trace = home / "trace.log" if os.environ.get("BENCH_HPC_TRACE") == "1" else None
    if trace is not None:
        real = env.get("JOBWIRE_HPC_BIN_DIR", "/usr/bin")
        env = {**env, "JOBWIRE_HPC_BIN_DIR": str(tracing_bin(home / "trace-bin", trace, kind, real))}
    config = StackConfig(
        home=home,
        api_port=free_port(),
        nats_port=free_port(),
        nats_monitor_port=free_port(),
        executors=[
            ExecutorConfig(
                node=node,
                backend="hpc",
                slots=jobs,
                env={"JOBWIRE_HPC_SCHEDULER": kind, "JOBWIRE_HPC_POLL_INTERVAL": POLL, **env},
            )
        ],
        env={"JOBWIRE_LOG_LEVEL": "WARNING"},
    )
    stack = Stack(config)
    stack.start()

    async def go() -> dict[str, Any]:
        watcher = Watcher()
        await watcher.start(stack.nats_url)
        t0_wall = time.time()
        t0 = time.perf_counter()
        ids, _, submit_s = await submit_burst(stack.api_url, jobs, 8, stack.auth_headers, spec=HPC_NOOP)
        await watcher.wait_done(ids, timeout=600)
        await watcher.nc.close()
        done = max(watcher.done[i] for i in ids) - t0
        # each job's time from running to its terminal event (the executor's poll + accounting + report)
        tails = sorted(watcher.done[i] - watcher.running[i] for i in ids if i in watcher.running)
        running = sorted(watcher.running[i] - t0 for i in ids if i in watcher.running)
        failed = sum(watcher.final[i] != "succeeded" for i in ids)
        traced = {"batch_commands": trace_summary(trace, t0_wall)} if trace is not None else {}
        return {
            **traced,
            "jobs": jobs,
            "http_connections": 8,
            "poll_interval_s": float(POLL),
            "submits_per_s": round(jobs / submit_s, 1),
            "jobs_per_s": round(jobs / done, 1),
            "seconds_to_last_running": round(running[-1], 2) if running else None,
            "seconds_to_last_finished": round(done, 2),
            "running_to_finished_s_p50": round(tails[len(tails) // 2], 2) if tails else None,
            "not_succeeded": failed,
        }

    try:
        before = {name: cpu_seconds(proc.pid) for name, proc in stack.services.items()}
        result = asyncio.run(go())
        used = {name: round(cpu_seconds(proc.pid) - before[name], 2) for name, proc in stack.services.items()}
        return {**result, "service_cpu_seconds": used}
    finally:
        stack.stop()


@contextlib.contextmanager
def _slurm() -> Iterator[dict[str, str]]:
    from tests.fixtures.slurm import start_slurm, stop_slurm

    cluster, pids = start_slurm()
    try:
        yield cluster.env
    finally:
        stop_slurm(cluster, pids)


@contextlib.contextmanager
def _sge() -> Iterator[dict[str, str]]:
    from tests.fixtures.sge import QMASTER_PID, _alive, _execd_pid, _stop

    if not os.path.exists(f"{SGE_BIN}/qsub") or os.geteuid() != 0:
        raise RuntimeError("SGE is not installed here (install-backends.sh sge), or we are not root")
    ours = _alive(QMASTER_PID) is None, _alive(_execd_pid()) is None
    up = subprocess.run(["bash", str(FIXTURES / "sge-up.sh")], capture_output=True, text=True, timeout=180)
    if up.returncode != 0:
        raise RuntimeError(f"SGE did not come up: {up.stdout[-1000:]} {up.stderr[-2000:]}")
    try:
        yield {"JOBWIRE_HPC_BIN_DIR": SGE_BIN, **SGE_ENV}
    finally:
        qdel = [f"{SGE_BIN}/qdel", "-u", "*"]
        subprocess.run(qdel, env={**os.environ, **SGE_ENV}, capture_output=True, check=False, timeout=60)
        if ours[1] and (pid := _alive(_execd_pid())):
            _stop(pid)
        if ours[0] and (pid := _alive(QMASTER_PID)):
            _stop(pid)


def measure(kind: str, jobs: int, lock_wait: float) -> dict[str, Any]:
    """``kind`` (slurm or sge): raw submits, then the same jobs through jobwire, under the lock."""
    fd = _take_lock(lock_wait)
    if fd is None:
        return {"skipped": f"the backends lock {LOCK} stayed held for {lock_wait:.0f} s"}
    try:
        with (
            _slurm() if kind == "slurm" else _sge() as env,
            tempfile.TemporaryDirectory(prefix=f"jobwire-bench-{kind}-") as home,
        ):
            Path(home).chmod(0o755)
            raw_env = {k: v for k, v in env.items() if not k.startswith("JOBWIRE_")}
            raw = (raw_sbatch if kind == "slurm" else raw_qsub)(raw_env, jobs, Path(home))
            ours = through_jobwire(kind, env, jobs, Path(home) / "stack")
    finally:
        os.close(fd)
    return {
        "raw": raw,
        "jobwire_executor_hpc": ours,
        "jobs_per_s_ratio": round(ours["jobs_per_s"] / raw["jobs_per_s"], 3),
        "target_ratio": 0.8,
    }


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "slurm"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    print(json.dumps(measure(which, count, float(os.environ.get("BENCH_SLURM_LOCK_WAIT", "300"))), indent=2))
