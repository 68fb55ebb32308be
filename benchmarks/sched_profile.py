"""Scheduler CPU per job on the embedded stack (not a test): what the scheduler process spends per no-op
job, from its submit to its end, read from the kernel's account of the process (utime + stime).

CPU seconds per job is steadier than a rate on a shared machine: other load slows the burst but does
not make the scheduler do more work. Optionally records a py-spy profile of the scheduler meanwhile.

    uv run --frozen python -m benchmarks.sched_profile               # 2000 jobs, 32 clients
    SCHED_PYSPY=/tmp/sched.txt uv run --frozen python -m benchmarks.sched_profile
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.stack_bench import NOOP, Watcher, submit_burst
from jobwire.stack.processes import free_port
from jobwire.stack.stack import ExecutorConfig, Stack, StackConfig

JOBS = int(os.environ.get("SCHED_JOBS", "2000"))
CLIENTS = int(os.environ.get("SCHED_CLIENTS", "32"))
SLOTS = int(os.environ.get("SCHED_SLOTS", "16"))


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (``/proc/<pid>/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(stack: Stack, pyspy_out: str | None) -> dict[str, object]:
    pids = {name: proc.pid for name, proc in stack.services.items()}
    watcher = Watcher()
    await watcher.start(stack.nats_url)
    api = stack.api_url
    _, _, _ = await submit_burst(api, 20, 4, stack.auth_headers)  # warm up
    await asyncio.sleep(1.0)
    spy = None
    if pyspy_out:
        exe = shutil.which("py-spy") or "py-spy"
        argv = [exe, "record", "-p", str(pids["scheduler"]), "-f", "raw", "-o", pyspy_out, "-r", "200"]
        spy = await asyncio.create_subprocess_exec(
            *argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        await asyncio.sleep(1.0)
    js = watcher.nc.jetstream()

    async def seqs() -> dict[str, int]:
        return {s: (await js.stream_info(s)).state.last_seq for s in ("JOBWIRE_CMD", "JOBWIRE_REPORT")}

    seq0 = await seqs()
    before = {n: cpu_seconds(p) for n, p in pids.items()}
    t0 = time.perf_counter()
    ids, latencies, submit_s = await submit_burst(api, JOBS, CLIENTS, stack.auth_headers)
    await watcher.wait_done(ids, timeout=600)
    e2e_s = max(watcher.done[i] for i in ids) - t0
    after = {n: cpu_seconds(p) for n, p in pids.items()}
    seq1 = await seqs()
    if spy is not None:
        spy.send_signal(2)
        await asyncio.wait_for(spy.wait(), 30)
    await watcher.nc.close()
    latencies.sort()
    return {
        "jobs": JOBS,
        "clients": CLIENTS,
        "submits_per_s": round(JOBS / submit_s, 1),
        "submit_p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "submit_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
        "jobs_completed_per_s": round(JOBS / e2e_s, 1),
        "messages_per_job": {s: round((seq1[s] - seq0[s]) / JOBS, 2) for s in seq0},
        "cpu_ms_per_job": {n: round((after[n] - before[n]) / JOBS * 1000, 3) for n in pids},
        "load_avg": os.getloadavg(),
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="jobwire-sched-") as home:
        config = StackConfig(
            home=Path(home),
            api_port=free_port(),
            nats_port=free_port(),
            nats_monitor_port=free_port(),
            database_url=os.environ.get("JOBWIRE_DATABASE_URL"),
            executors=[ExecutorConfig(node="bench", slots=SLOTS)],
            env={"JOBWIRE_LOG_LEVEL": "WARNING", "JOBWIRE_EXECUTOR_TICK_INTERVAL": "0.05"},
        )
        stack = Stack(config)
        stack.start()
        try:
            figures = asyncio.run(measure(stack, os.environ.get("SCHED_PYSPY")))
        finally:
            stack.stop()
    print(json.dumps({"noop": NOOP, **figures}, indent=2))


if __name__ == "__main__":
    main()
