"""Benchmark of the embedded stack (not a test): submit throughput, latencies, end-to-end job rate.

Starts its own stack (nats-server, SQLite or $JOBWIRE_DATABASE_URL, scheduler, local executor,
gateway) on free ports in a temporary directory and prints one JSON document.

    make bench                       # defaults
    BENCH_JOBS=2000 BENCH_CLIENTS=64 make bench
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import nats

from benchmarks import read_bench
from jobwire.stack.processes import free_port
from jobwire.stack.stack import ExecutorConfig, Stack, StackConfig

JOBS = int(os.environ.get("BENCH_JOBS", "1000"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "32"))
LATENCY_SAMPLES = int(os.environ.get("BENCH_LATENCY_SAMPLES", "50"))
SLOTS = int(os.environ.get("BENCH_SLOTS", "16"))
NOOP = {"command": ["true"], "expected_runtime": 1}


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Watcher:
    """Receipt time of each job's running and terminal events, from one NATS subscription."""

    def __init__(self) -> None:
        self.running: dict[str, float] = {}
        self.done: dict[str, float] = {}

    async def start(self, url: str) -> None:
        self.nc = await nats.connect(url)

        async def cb(msg) -> None:  # type: ignore[no-untyped-def]
            now = time.perf_counter()
            ev = json.loads(msg.data)
            if ev.get("kind") != "transition":
                return
            if ev["state"] == "running":
                self.running.setdefault(ev["job_id"], now)
            elif ev["state"] in ("succeeded", "failed", "cancelled", "timed_out"):
                self.done.setdefault(ev["job_id"], now)

        await self.nc.subscribe("jobwire.evt.job.>", cb=cb)

    async def wait_done(self, ids: list[str], timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while not all(i in self.done for i in ids):
            if time.perf_counter() > deadline:
                raise TimeoutError(
                    f"{sum(i in self.done for i in ids)}/{len(ids)} jobs finished in {timeout}s"
                )
            await asyncio.sleep(0.05)


async def submit_burst(
    api: str, n: int, clients: int, headers: dict[str, str] | None = None
) -> tuple[list[str], list[float], float]:
    ids: list[str] = []
    latencies: list[float] = []
    todo = iter(range(n))

    async def worker(c: httpx.AsyncClient) -> None:
        for _ in todo:
            t0 = time.perf_counter()
            r = await c.post("/v1/jobs", json=NOOP)
            latencies.append(time.perf_counter() - t0)
            r.raise_for_status()
            ids.append(r.json()["id"])

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=api, timeout=60, limits=limits, headers=headers) as c:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for _ in range(clients)))
        elapsed = time.perf_counter() - t0
    return ids, latencies, elapsed


async def get_burst(
    api: str, paths: list[str], clients: int, headers: dict[str, str] | None
) -> tuple[list[float], float]:
    latencies: list[float] = []
    todo = iter(paths)

    async def worker(c: httpx.AsyncClient) -> None:
        for path in todo:
            t0 = time.perf_counter()
            r = await c.get(path)
            latencies.append(time.perf_counter() - t0)
            r.raise_for_status()

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=api, timeout=60, limits=limits, headers=headers) as c:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for _ in range(clients)))
        return latencies, time.perf_counter() - t0


async def read_burst(
    api: str, ids: list[str], clients: int, headers: dict[str, str] | None
) -> dict[str, float]:
    """Authenticated reads (each checks a bearer token): one job, and the per-state counts."""
    out: dict[str, float] = {}
    for name, paths in (
        ("get_job", [f"/v1/jobs/{i}" for i in ids]),
        ("counts", ["/v1/jobs/counts"] * len(ids)),
    ):
        latencies, elapsed = await get_burst(api, paths, clients, headers)
        out[f"{name}_requests_per_s"] = round(len(paths) / elapsed, 1)
        out[f"{name}_latency_ms_p50"] = round(pct(latencies, 50) * 1000, 2)
        out[f"{name}_latency_ms_p99"] = round(pct(latencies, 99) * 1000, 2)
    return out


async def run(stack: Stack) -> dict[str, object]:
    watcher = Watcher()
    await watcher.start(stack.nats_url)
    api = stack.api_url
    async with httpx.AsyncClient(base_url=api, timeout=60, headers=stack.auth_headers) as c:  # warm up
        r = await c.post("/v1/jobs", json=NOOP)
        await watcher.wait_done([r.json()["id"]], 30)

    # (a) + (c): a burst of submissions, then the time until the last one finished
    t0 = time.perf_counter()
    ids, latencies, submit_s = await submit_burst(api, JOBS, CLIENTS, stack.auth_headers)
    await watcher.wait_done(ids, timeout=600)
    e2e_s = max(watcher.done[i] for i in ids) - t0

    # (b) one job at a time on an idle stack: submit -> running, submit -> succeeded
    to_running, to_done = [], []
    async with httpx.AsyncClient(base_url=api, timeout=60, headers=stack.auth_headers) as c:
        for _ in range(LATENCY_SAMPLES):
            t = time.perf_counter()
            r = await c.post("/v1/jobs", json=NOOP)
            jid = r.json()["id"]
            await watcher.wait_done([jid], 30)
            if jid in watcher.running:
                to_running.append(watcher.running[jid] - t)
            to_done.append(watcher.done[jid] - t)
    await watcher.nc.close()
    reads = await read_burst(api, ids, CLIENTS, stack.auth_headers)
    ms = 1000.0
    return {
        "submit": {
            "jobs": JOBS,
            "concurrent_clients": CLIENTS,
            "requests_per_s": round(JOBS / submit_s, 1),
            "latency_ms_p50": round(pct(latencies, 50) * ms, 2),
            "latency_ms_p99": round(pct(latencies, 99) * ms, 2),
        },
        "latency_idle": {
            "samples": LATENCY_SAMPLES,
            "submit_to_running_ms_p50": round(pct(to_running, 50) * ms, 1),
            "submit_to_running_ms_p99": round(pct(to_running, 99) * ms, 1),
            "submit_to_succeeded_ms_p50": round(pct(to_done, 50) * ms, 1),
            "submit_to_succeeded_ms_p99": round(pct(to_done, 99) * ms, 1),
            "submit_to_succeeded_ms_mean": round(statistics.fmean(to_done) * ms, 1),
        },
        "reads": {"requests": len(ids), "concurrent_clients": CLIENTS, **reads},
        "end_to_end": {
            "jobs": JOBS,
            "executor_slots": SLOTS,
            "seconds_first_submit_to_last_finished": round(e2e_s, 2),
            "jobs_completed_per_s": round(JOBS / e2e_s, 1),
        },
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="jobwire-bench-") as home:
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
            figures = asyncio.run(run(stack))
        finally:
            stack.stop()
    doc = {
        "benchmark": "jobwire embedded stack",
        "machine": {
            "cores": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "database": "postgresql" if config.database_url else "sqlite",
        **figures,
    }
    if os.environ.get("BENCH_READ", "1") != "0":  # the read path at 1M stored jobs, its own stores
        doc["reads_at_scale"] = read_bench.measure()
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
