"""Raw ``sbatch`` beside jobwire's executor-hpc on the project's test SLURM (tests/fixtures/slurm.py).

The cluster is started only when SLURM is installed here and we are root, under the shared backends lock
(the tests' SLURM, SGE and Docker runs hold it too; ``BENCH_SLURM_LOCK_WAIT`` seconds, then skipped). The
same no-op jobs both ways: submits/s (one ``sbatch`` after the other, or jobwire's HTTP submits) and jobs/s
from the first submit to the last job gone from the queue (or succeeded in jobwire).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from jobwire.stack.processes import free_port
from jobwire.stack.stack import ExecutorConfig, Stack, StackConfig

LOCK = "/tmp/jobwire-backends.lock"  # noqa: S108 - the shared lock every backend run takes


def _take_lock(wait: float) -> int | None:
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                return None
            time.sleep(1)


def raw_sbatch(env: dict[str, str], jobs: int, workdir: Path) -> dict[str, float]:
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
    pending = set(ids)
    while pending:
        out = subprocess.run(
            ["squeue", "-h", "-o", "%i", "-j", ",".join(sorted(pending))],
            env=full,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        pending &= set(out.stdout.split())
        if time.perf_counter() - t0 > 600:
            raise TimeoutError(f"{len(pending)} sbatch jobs still queued after 600 s")
        time.sleep(0.1)
    done = time.perf_counter() - t0
    return {"jobs": jobs, "submits_per_s": round(jobs / submitted, 1), "jobs_per_s": round(jobs / done, 1)}


def through_jobwire(env: dict[str, str], jobs: int, home: Path) -> dict[str, float]:
    """The same jobs through gateway, scheduler and one executor-hpc driving the same cluster."""
    from benchmarks.e2e import NOOP, Watcher, submit_burst

    config = StackConfig(
        home=home,
        api_port=free_port(),
        nats_port=free_port(),
        nats_monitor_port=free_port(),
        executors=[
            ExecutorConfig(
                node="hpc-slurm", backend="hpc", slots=jobs, env={"JOBWIRE_HPC_SCHEDULER": "slurm", **env}
            )
        ],
        env={"JOBWIRE_LOG_LEVEL": "WARNING"},
    )
    stack = Stack(config)
    stack.start()

    async def go() -> dict[str, float]:
        watcher = Watcher()
        await watcher.start(stack.nats_url)
        t0 = time.perf_counter()
        ids, _, submit_s = await submit_burst(stack.api_url, jobs, 8, stack.auth_headers, spec=NOOP)
        await watcher.wait_done(ids, timeout=600)
        await watcher.nc.close()
        done = max(watcher.done[i] for i in ids) - t0
        failed = sum(watcher.final[i] != "succeeded" for i in ids)
        return {
            "jobs": jobs,
            "submits_per_s": round(jobs / submit_s, 1),
            "jobs_per_s": round(jobs / done, 1),
            "not_succeeded": failed,
        }

    try:
        return asyncio.run(go())
    finally:
        stack.stop()


def measure(jobs: int, lock_wait: float) -> dict[str, Any]:
    from tests.fixtures.slurm import SlurmUnavailable, start_slurm, stop_slurm

    fd = _take_lock(lock_wait)
    if fd is None:
        return {"skipped": f"the backends lock {LOCK} stayed held for {lock_wait:.0f} s"}
    try:
        try:
            cluster, pids = start_slurm()
        except SlurmUnavailable as e:
            return {"skipped": str(e)}
        try:
            with tempfile.TemporaryDirectory(prefix="jobwire-bench-hpc-") as home:
                Path(home).chmod(0o755)
                raw = raw_sbatch(cluster.env, jobs, Path(home))
                ours = through_jobwire(cluster.env, jobs, Path(home) / "stack")
        finally:
            stop_slurm(cluster, pids)
    finally:
        os.close(fd)
    return {
        "raw_sbatch": raw,
        "jobwire_executor_hpc": ours,
        "jobs_per_s_ratio": round(ours["jobs_per_s"] / raw["jobs_per_s"], 3),
        "target_ratio": 0.8,
    }
