"""Durable submits on the embedded stack (not a test): ``wrk`` at 1 and 32 connections on ``POST /v1/jobs``,
with the CPU each process (gateway, scheduler, executor, nats-server) spent per submit, read from the
kernel's account of the process (utime + stime), and optionally a py-spy profile of gateway and scheduler.

CPU per submit is steadier than a rate on a shared machine: other load slows the run but does not make a
service do more work per request. The executor runs the jobs meanwhile, as in ``make bench``; with
``SUBMIT_EXECUTOR=0`` there is none, and the jobs only queue (the submit path alone). ``SUBMIT_KEYS=1``
sends a fresh ``Idempotency-Key`` with each submit, as a client that retries safely does. ``machine`` is
the CPU the whole machine spent per submit (the jobs and ``wrk`` too). The stack passes this process's
environment on: ``JOBWIRE_EXECUTOR_JOB_NICE=0`` runs the jobs at the services' priority.

    uv run --frozen python -m benchmarks.submit_profile
    SUBMIT_PYSPY=/tmp/prof SUBMIT_DB=postgresql uv run --frozen python -m benchmarks.submit_profile
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import msgspec

from benchmarks import loadgen
from benchmarks.e2e import NOOP
from benchmarks.sched_profile import cpu_seconds
from jobwire.stack.processes import free_port
from jobwire.stack.stack import ExecutorConfig, Stack, StackConfig

CONNECTIONS = [int(c) for c in os.environ.get("SUBMIT_CONNECTIONS", "1,32").split(",")]
SECONDS = float(os.environ.get("SUBMIT_SECONDS", "10"))
EXECUTOR = os.environ.get("SUBMIT_EXECUTOR", "1") != "0"
DB = os.environ.get("SUBMIT_DB", "sqlite")
KEYS = os.environ.get("SUBMIT_KEYS", "0") != "0"
PYSPY = os.environ.get("SUBMIT_PYSPY")  # a path prefix: <prefix>-<service>-<connections>.txt


def _stack(home: Path, url: str | None) -> Stack:
    node = ExecutorConfig(node="bench", slots=16, env={"JOBWIRE_EXECUTOR_CPUS": "16"})
    executors = [node] if EXECUTOR else []
    return Stack(
        StackConfig(
            home=home,
            api_port=free_port(),
            nats_port=free_port(),
            nats_monitor_port=free_port(),
            database_url=url,
            executors=executors,
            env={"JOBWIRE_LOG_LEVEL": "WARNING", "JOBWIRE_EXECUTOR_TICK_INTERVAL": "0.05"},
        )
    )


def _pids(stack: Stack) -> dict[str, int]:
    pids = {name: proc.pid for name, proc in stack.services.items()}
    if stack.nats is not None:
        pids["nats"] = stack.nats.process.pid
    return pids


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and the processes under it: a gateway with JOBWIRE_GATEWAY_WORKERS > 1 serves
    from child processes, whose time its own utime + stime does not hold."""
    total = cpu_seconds(pid)
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                with contextlib.suppress(OSError):
                    total += tree_cpu(int(child))
    return total


def busy_cpu() -> float:
    """CPU seconds every process of this machine has spent (user, nice, system, irq...; not idle or
    iowait): beside the services' own, what the jobs, their wrappers and the load generator took."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def point(stack: Stack, load: loadgen.Load, connections: int) -> dict[str, object]:
    pids = _pids(stack)
    spies = []
    if PYSPY:
        exe = shutil.which("py-spy") or "py-spy"
        for name in ("gateway", "scheduler"):
            out = f"{PYSPY}-{name}-{connections}.txt"
            argv = [exe, "record", "-p", str(pids[name]), "-f", "raw", "-o", out, "-r", "100"]
            argv += ["-d", str(round(SECONDS))]
            spies.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1.0)
    before = {**{n: tree_cpu(p) for n, p in pids.items()}, "machine": busy_cpu()}
    load0 = os.getloadavg()
    result = loadgen.run(load, connections, SECONDS)
    after = {**{n: tree_cpu(p) for n, p in pids.items()}, "machine": busy_cpu()}
    for spy in spies:
        spy.wait(timeout=120)
    n = max(1, int(result["requests"]))
    return {
        **result,
        "cpu_ms_per_submit": {k: round((after[k] - before[k]) * 1000 / n, 2) for k in before},
        "load_average": [round(x, 2) for x in (*load0, *os.getloadavg()[:1])],
    }


def main() -> None:
    server = None
    url = None
    if DB == "postgresql":
        from tests.fixtures.postgres import start_postgres

        server = start_postgres()
        url = server.database_url("postgres")
    with tempfile.TemporaryDirectory(prefix="jobwire-submit-") as tmp:
        stack = _stack(Path(tmp), url)
        stack.start()
        try:
            body = msgspec.json.encode(NOOP)
            load = loadgen.Load(stack.api_url, "/v1/jobs", body, stack.auth_headers, keyed=KEYS)
            loadgen.run(load, 4, 2)  # warm up
            points = [point(stack, load, c) for c in CONNECTIONS]
            print(
                json.dumps({"database": DB, "executor": EXECUTOR, "keyed": KEYS, "points": points}, indent=1)
            )
        finally:
            stack.stop()
            if server is not None:
                from tests.fixtures.postgres import stop_postgres

                stop_postgres(server)


if __name__ == "__main__":
    main()
