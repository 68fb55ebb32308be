"""Where an end-to-end no-op job's time goes (not a test): one ``POST /v1/jobs:batch`` of ``E2E_JOBS``
no-op jobs on the embedded stack (SQLite, one local executor), timed from the request to the last
``succeeded`` event, with each service's CPU per job (utime + stime from ``/proc``) and, with
``E2E_PYSPY=DIR``, a py-spy profile of every service meanwhile (``DIR/<service>.txt``, raw format).

CPU per job is steadier than a rate on a shared machine; the rate is what the issue's target counts.

    uv run --frozen python -m benchmarks.e2e_profile
    E2E_PYSPY=/tmp/prof E2E_JOBS=2000 uv run --frozen python -m benchmarks.e2e_profile
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.e2e import NOOP, Watcher, idle_latency
from benchmarks.sched_profile import cpu_seconds
from jobwire.stack.processes import free_port
from jobwire.stack.stack import ExecutorConfig, Stack, StackConfig

JOBS = int(os.environ.get("E2E_JOBS", "1000"))
SLOTS = int(os.environ.get("E2E_SLOTS", "16"))
ROUNDS = int(os.environ.get("E2E_ROUNDS", "1"))
IDLE = int(os.environ.get("E2E_IDLE_SAMPLES", "20"))
#: E2E_CPUS: the CPUs the node declares (default: the machine's, which caps 1-CPU jobs at that many)
EXECUTOR_ENV = {"JOBWIRE_EXECUTOR_CPUS": os.environ["E2E_CPUS"]} if os.environ.get("E2E_CPUS") else {}
#: E2E_TICK: the executor's tick interval in seconds (``make bench``'s 0.05), or ``default`` (make run's)
TICK = os.environ.get("E2E_TICK", "0.05")


def children_cpu() -> float:
    """CPU of this machine's processes that are not the stack's services: the jobs and their wrappers
    (detached, so no service's own account shows them) and everything else running here."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    return sum(int(x) for x in fields[:3]) / os.sysconf("SC_CLK_TCK")  # user + nice + system


class Timeline(Watcher):
    """Also the receipt time of every transition of every job, to see where a job waits."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, dict[str, float]] = {}

    async def start(self, url: str) -> None:
        await super().start(url)

        async def cb(msg: Any) -> None:
            ev = json.loads(msg.data)
            if ev.get("kind") == "transition":
                self.seen.setdefault(ev["job_id"], {}).setdefault(ev["state"], time.perf_counter())

        await self.nc.subscribe("jobwire.evt.job.>", cb=cb, pending_msgs_limit=1_000_000)

    def phases(self, ids: list[str]) -> dict[str, Any]:
        """Median and p90 ms of each step of the jobs' lives, and how many held a slot on average."""
        out: dict[str, Any] = {}
        for a, b in (("queued", "starting"), ("starting", "running"), ("running", "succeeded")):
            d = sorted(s[b] - s[a] for s in (self.seen.get(i, {}) for i in ids) if a in s and b in s)
            if d:
                p50, p90 = d[len(d) // 2], d[int(len(d) * 0.9)]
                out[f"{a}>{b}"] = {"p50_ms": round(p50 * 1000, 1), "p90_ms": round(p90 * 1000, 1)}
        seen = [self.seen.get(i, {}) for i in ids]
        spans = [(s["starting"], s["succeeded"]) for s in seen if "starting" in s and "succeeded" in s]
        if spans:
            t0, t1 = min(s for s, _ in spans), max(e for _, e in spans)
            out["mean_jobs_holding_a_slot"] = round(sum(e - s for s, e in spans) / (t1 - t0), 2)
        return out


async def bus_messages(stack: Stack) -> dict[str, int]:
    """Messages each client connection has published so far (NATS monitoring ``/connz``), by its
    name: a count that no other load on the machine disturbs, unlike CPU time."""
    if stack.nats is None:
        return {}
    url = f"http://127.0.0.1:{stack.nats.monitor_port}/connz"
    async with httpx.AsyncClient(timeout=10) as c:
        conns = (await c.get(url, params={"limit": 1024})).json().get("connections", [])
    out: dict[str, int] = {}
    for conn in conns:
        name = conn.get("name") or f"cid{conn['cid']}"
        out[name] = out.get(name, 0) + int(conn.get("in_msgs", 0))
    return out


async def one_round(stack: Stack, watcher: Timeline, jobs: int) -> dict[str, Any]:
    pids = {name: proc.pid for name, proc in stack.services.items()}
    msgs0 = await bus_messages(stack)
    if stack.nats is not None:
        pids["nats"] = stack.nats.process.pid
    before = {n: cpu_seconds(p) for n, p in pids.items()}
    busy0 = children_cpu()
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=300, headers=stack.auth_headers) as c:
        t0 = time.perf_counter()
        r = await c.post("/v1/jobs:batch", json={"jobs": [NOOP] * jobs})
        answered = time.perf_counter() - t0
        r.raise_for_status()
    ids = r.json()["ids"]
    await watcher.wait_done(ids, timeout=max(300, jobs / 2))
    end = max(watcher.done[i] for i in ids)
    elapsed = end - t0
    after = {n: cpu_seconds(p) for n, p in pids.items()}
    msgs1 = await bus_messages(stack)
    published = {n: round((v - msgs0.get(n, 0)) / jobs, 2) for n, v in msgs1.items() if v > msgs0.get(n, 0)}
    services = sum(after[n] - before[n] for n in pids)
    machine = children_cpu() - busy0
    runs = sorted(watcher.running[i] - t0 for i in ids if i in watcher.running)
    return {
        "jobs": jobs,
        "status": r.status_code,
        "request_s": round(answered, 3),
        "seconds_to_last_finished": round(elapsed, 2),
        "jobs_completed_per_s": round(jobs / elapsed, 1),
        "first_running_s": round(runs[0], 3) if runs else None,
        "median_running_s": round(statistics.median(runs), 3) if runs else None,
        "phases": watcher.phases(ids),
        "not_succeeded": sum(watcher.final.get(i) != "succeeded" for i in ids),
        "cpu_ms_per_job": {n: round((after[n] - before[n]) / jobs * 1000, 3) for n in pids},
        "machine_cpu_ms_per_job_outside_services": round((machine - services) / jobs * 1000, 3),
        # publishes (reports, events, acks, fetch requests, heartbeats) per job, by NATS connection
        "bus_messages_per_job": published,
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


PYSPY = shutil.which("py-spy") or os.path.expanduser("~/.local/bin/py-spy")


async def measure(stack: Stack, pyspy_dir: str | None) -> list[dict[str, Any]]:
    watcher = Timeline()
    await watcher.start(stack.nats_url)
    try:
        await one_round(stack, watcher, 20)  # warm-up
        spies = []
        if pyspy_dir:
            for name, proc in stack.services.items():
                out = os.path.join(pyspy_dir, f"{name}.txt")
                argv = [PYSPY, "record", "-p", str(proc.pid), "-f", "raw", "-o", out, "-r", "100", "--idle"]
                spies.append(
                    await asyncio.create_subprocess_exec(
                        *argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                    )
                )
            await asyncio.sleep(1.0)
        rounds = [await one_round(stack, watcher, JOBS) for _ in range(ROUNDS)]
        for spy in spies:
            spy.send_signal(2)
            await asyncio.wait_for(spy.wait(), 60)
        if IDLE:
            rounds.append({"latency_idle": await idle_latency(stack, watcher, IDLE)})
        return rounds
    finally:
        await watcher.nc.close()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="jobwire-e2e-") as home:
        env = {"JOBWIRE_LOG_LEVEL": "WARNING"}
        if TICK != "default":
            env["JOBWIRE_EXECUTOR_TICK_INTERVAL"] = TICK
        config = StackConfig(
            home=Path(home),
            api_port=free_port(),
            nats_port=free_port(),
            nats_monitor_port=free_port(),
            database_url=os.environ.get("JOBWIRE_DATABASE_URL"),
            executors=[ExecutorConfig(node="bench", slots=SLOTS, env=EXECUTOR_ENV)],
            env=env,
        )
        stack = Stack(config)
        stack.start()
        try:
            pyspy_dir = os.environ.get("E2E_PYSPY")
            if pyspy_dir:
                Path(pyspy_dir).mkdir(parents=True, exist_ok=True)
            rounds = asyncio.run(measure(stack, pyspy_dir))
        finally:
            stack.stop()
    print(json.dumps({"noop": NOOP, "slots": SLOTS, "rounds": rounds}, indent=2))


if __name__ == "__main__":
    main()
