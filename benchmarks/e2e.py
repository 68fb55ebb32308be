"""End-to-end figures of one running stack: jobs completed/s, a big batch, idle latency, reads.

A job's running and terminal times are taken from one NATS subscription to the job events, so no figure
is slowed by polling the API.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import nats
from nats.aio.client import Client

from benchmarks.loadgen import Load, exchange, pct, request_bytes
from jobwire.stack.stack import Stack

NOOP: dict[str, Any] = {"command": ["true"], "expected_runtime": 1}
TERMINAL = ("succeeded", "failed", "cancelled", "timed_out")


class Watcher:
    """Receipt time of each job's running and terminal events, and its final state."""

    def __init__(self) -> None:
        self.running: dict[str, float] = {}
        self.done: dict[str, float] = {}
        self.final: dict[str, str] = {}
        self.nc: Client

    async def start(self, url: str) -> None:
        self.nc = await nats.connect(url)

        async def cb(msg: Any) -> None:
            now = time.perf_counter()
            ev = json.loads(msg.data)
            if ev.get("kind") != "transition":
                return
            if ev["state"] == "running":
                self.running.setdefault(ev["job_id"], now)
            elif ev["state"] in TERMINAL:
                self.done.setdefault(ev["job_id"], now)
                self.final.setdefault(ev["job_id"], ev["state"])

        await self.nc.subscribe("jobwire.evt.job.>", cb=cb, pending_msgs_limit=1_000_000)

    async def wait_done(self, ids: list[str], timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while not all(i in self.done for i in ids):
            if time.perf_counter() > deadline:
                raise TimeoutError(
                    f"{sum(i in self.done for i in ids)}/{len(ids)} jobs finished in {timeout}s"
                )
            await asyncio.sleep(0.05)


async def submit_burst(
    api: str, n: int, clients: int, headers: dict[str, str] | None = None, spec: dict[str, Any] = NOOP
) -> tuple[list[str], list[float], float]:
    """``n`` submits over ``clients`` kept-alive connections; ids, latencies, seconds. A connection the
    server drops is retried with the same ``Idempotency-Key`` (so no job is submitted twice), at most 3
    times. Raw HTTP/1.1 on asyncio streams (``loadgen``'s lean client), not httpx: on the stack's own 2
    cores httpx spent more CPU a request than the gateway and held the end-to-end figure to its pace
    (99-125 submits/s, where wrk drove the same stack at 770-900/s)."""
    split = urlsplit(api)
    load = Load(api, "/v1/jobs", json.dumps(spec).encode(), dict(headers or {}), keyed=True)
    ids: list[str] = []
    latencies: list[float] = []
    todo = iter(range(n))

    async def worker() -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            for _ in todo:
                request = request_bytes(load)  # its key is kept for the retries
                t0 = time.perf_counter()
                for attempt in range(3):
                    try:
                        if conn is None:
                            conn = await asyncio.open_connection(split.hostname, split.port)
                        status, body = await asyncio.wait_for(exchange(*conn, request), 60)
                        break
                    except (TimeoutError, OSError, asyncio.IncompleteReadError) as e:
                        DROPPED.append(repr(e))
                        if conn is not None:
                            conn[1].close()
                        conn = None
                        if attempt == 2:
                            raise
                latencies.append(time.perf_counter() - t0)
                if not 200 <= status < 300:
                    raise RuntimeError(f"a submit was answered {status}: {body[:300]!r}")
                ids.append(json.loads(body)["id"])
        finally:
            if conn is not None:
                conn[1].close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return ids, latencies, time.perf_counter() - t0


#: connections the server dropped during ``submit_burst`` (reported, never hidden)
DROPPED: list[str] = []


async def batch_rate(stack: Stack, watcher: Watcher, jobs: int) -> dict[str, Any]:
    """One ``POST /v1/jobs:batch`` of ``jobs`` no-op specs, then the time until the last has finished.

    A batch the gateway refuses as too large (413: it must fit one NATS message) is recorded with the
    gateway's reason, and half of it is tried instead, until one is taken."""
    refused: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=300, headers=stack.auth_headers) as c:
        while True:
            t0 = time.perf_counter()
            r = await c.post("/v1/jobs:batch", json={"jobs": [NOOP] * jobs})
            answered = time.perf_counter() - t0
            if r.status_code != 413 or jobs == 1:
                break
            refused.append({"jobs": jobs, "status": 413, "detail": r.json().get("detail")})
            jobs //= 2
        r.raise_for_status()
    ids = r.json()["ids"]
    await watcher.wait_done(ids, timeout=max(600, jobs / 5))
    elapsed = max(watcher.done[i] for i in ids) - t0
    return {
        "jobs": jobs,
        "status": r.status_code,
        "refused_larger": refused,
        "request_s": round(answered, 2),
        "seconds_to_last_finished": round(elapsed, 2),
        "jobs_completed_per_s": round(jobs / elapsed, 1),
        "not_succeeded": sum(watcher.final.get(i) != "succeeded" for i in ids),
    }


async def array_rate(stack: Stack, watcher: Watcher, tasks: int) -> dict[str, Any]:
    """One array of ``tasks`` no-op tasks (no parallelism limit: the scheduler makes tasks as slots
    allow), then the time until the array's own end event (sent when its last task ended)."""
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=300, headers=stack.auth_headers) as c:
        t0 = time.perf_counter()
        r = await c.post("/v1/jobs", json={**NOOP, "array": {"count": tasks}})
        answered = time.perf_counter() - t0
        r.raise_for_status()
        array_id = r.json()["id"]
        await watcher.wait_done([array_id], timeout=max(600, tasks / 5))
        elapsed = watcher.done[array_id] - t0
        counts = (await c.get(f"/v1/arrays/{array_id}", params={"limit": 1})).json()["counts"]
    return {
        "tasks": tasks,
        "status": r.status_code,
        "request_s": round(answered, 3),
        "seconds_to_last_finished": round(elapsed, 2),
        "tasks_completed_per_s": round(tasks / elapsed, 1),
        "not_succeeded": tasks - counts["succeeded"],
    }


async def idle_latency(stack: Stack, watcher: Watcher, samples: int) -> dict[str, float]:
    """One job at a time on an idle stack: submit -> running and -> succeeded."""
    to_running, to_done = [], []
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60, headers=stack.auth_headers) as c:
        for _ in range(samples):
            t = time.perf_counter()
            r = await c.post("/v1/jobs", json=NOOP)
            jid = r.json()["id"]
            await watcher.wait_done([jid], 30)
            if jid in watcher.running:
                to_running.append(watcher.running[jid] - t)
            to_done.append(watcher.done[jid] - t)
    ms = 1000.0
    return {
        "samples": samples,
        "submit_to_running_ms_p50": round(pct(to_running, 50) * ms, 1),
        "submit_to_running_ms_p99": round(pct(to_running, 99) * ms, 1),
        "submit_to_succeeded_ms_p50": round(pct(to_done, 50) * ms, 1),
        "submit_to_succeeded_ms_p99": round(pct(to_done, 99) * ms, 1),
        "submit_to_succeeded_ms_mean": round(statistics.fmean(to_done) * ms, 1),
    }


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
