"""The scheduler's memory on a database of a million stored jobs beside an empty one (issue 11: "1M stored
jobs do not grow the scheduler's memory").

Each time the same: NATS, the scheduler and the gateway (no executor) start on the database, the same
``BENCH_SCALE_SUBMITS`` no-op jobs are submitted (201: the scheduler stored each and holds it pending, no
node being up), and the scheduler's RSS is sampled once a second for ``BENCH_SCALE_SETTLE_S``; the figure is
the median of those samples. The million-job database is the one ``read_bench`` seeded (its spread of
states: a few percent of the jobs are active, and the scheduler rebuilds its queues from those on start).

Two figures, apart: stored jobs (a copy of that database with its active jobs ended long ago, against the
empty one: the issue's target) and active jobs (the database as seeded, against that copy: the bytes the
scheduler holds per queued or running job). One growth of both together said neither.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.e2e import NOOP
from benchmarks.soak import FLAT, rss_bytes
from jobwire.stack.processes import free_port
from jobwire.stack.stack import Stack, StackConfig

SUBMITS = int(os.environ.get("BENCH_SCALE_SUBMITS", "500"))
SETTLE_S = float(os.environ.get("BENCH_SCALE_SETTLE_S", "15"))


def stored(path: Path) -> dict[str, int]:
    """Jobs in the database, and how many of them are active (what the scheduler loads on start)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        total = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
        active = conn.execute(
            "SELECT count(*) FROM jobs WHERE state IN ('queued', 'held', 'starting', 'running')"
        ).fetchone()[0]
    finally:
        conn.close()
    return {"jobs_stored": int(total), "jobs_active": int(active)}


async def _submit(stack: Stack, n: int) -> dict[str, int]:
    """``n`` submits over 8 connections; how many were answered with which status."""
    statuses: dict[str, int] = {}
    todo = iter(range(n))

    async def worker(c: httpx.AsyncClient) -> None:
        for _ in todo:
            r = await c.post("/v1/jobs", json=NOOP)
            statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1

    async with httpx.AsyncClient(base_url=stack.api_url, headers=stack.auth_headers, timeout=120) as c:
        await asyncio.gather(*(worker(c) for _ in range(8)))
    return statuses


def scheduler_rss(db: Path, home: Path) -> dict[str, Any]:
    """Start the stack on ``db``, submit, and sample the scheduler's RSS while it settles."""
    stack = Stack(
        StackConfig(
            home=home,
            api_port=free_port(),
            nats_port=free_port(),
            nats_monitor_port=free_port(),
            database_url=f"sqlite+aiosqlite:///{db}",
            executors=[],
            env={"JOBWIRE_LOG_LEVEL": "WARNING"},
        )
    )
    t0 = time.perf_counter()
    stack.start()
    try:
        pid = stack.services["scheduler"].pid
        at_start = rss_bytes(pid)
        ready_s = time.perf_counter() - t0
        statuses = asyncio.run(_submit(stack, SUBMITS))
        samples = []
        end = time.monotonic() + SETTLE_S
        while time.monotonic() < end:
            samples.append(rss_bytes(pid))
            time.sleep(1.0)
        dead = stack.dead()
    finally:
        stack.stop()
    mib = 2**20
    return {
        **stored(db),
        "start_to_ready_s": round(ready_s, 1),
        "submits": statuses,
        "rss_mib_at_ready": round(at_start / mib, 1),
        "rss_mib": round(statistics.median(samples) / mib, 1),
        "rss_mib_max": round(max(samples) / mib, 1),
        "samples": len(samples),
        "services_dead": dead,
    }


def ended_copy(db: Path, to: Path) -> Path:
    """``db`` with every active job ended long ago (succeeded at its submit time, weeks before now:
    past fair share's window), the same stored jobs with none for the scheduler to hold."""
    for leftover in (to, Path(f"{to}-wal"), Path(f"{to}-shm")):
        leftover.unlink(missing_ok=True)
    shutil.copyfile(db, to)
    conn = sqlite3.connect(to, isolation_level=None)
    try:
        conn.execute(
            "UPDATE jobs SET state = 'succeeded', exit_code = 0, ended_at = created_at, "
            "started_at = coalesce(started_at, created_at), "
            "dispatched_at = coalesce(dispatched_at, created_at) "
            "WHERE state IN ('queued', 'held', 'starting', 'running')"
        )
    finally:
        conn.close()
    return to


def compare(million_db: Path, home: Path) -> dict[str, Any]:
    """The scheduler's RSS on an empty database, on ``million_db`` with its jobs all ended, and on
    ``million_db`` as seeded: stored jobs' growth against 10%, and bytes per active job."""
    home.mkdir(parents=True, exist_ok=True)
    empty = scheduler_rss(home / "empty.db", home / "empty")
    ended_db = ended_copy(million_db, home / "ended.db")
    try:
        ended = scheduler_rss(ended_db, home / "ended")
    finally:
        for leftover in (ended_db, Path(f"{ended_db}-wal"), Path(f"{ended_db}-shm")):
            leftover.unlink(missing_ok=True)
    full = scheduler_rss(million_db, home / "million")
    stored_growth = ended["rss_mib"] / empty["rss_mib"] - 1 if empty["rss_mib"] else 0.0
    active = full["jobs_active"] - ended["jobs_active"]
    per_active = (full["rss_mib"] - ended["rss_mib"]) * 2**20 / active if active else None
    return {
        "submits_each": SUBMITS,
        "settle_s": SETTLE_S,
        "empty_database": empty,
        "ended_database": ended,
        "seeded_database": full,
        "stored_jobs": {
            "figure": "scheduler RSS with the million jobs stored and none active, against an empty database",
            "growth": round(stored_growth, 3),
            "target": f"within {FLAT:.0%}",
            "flat": abs(stored_growth) <= FLAT,
        },
        "active_jobs": {
            "figure": "scheduler RSS per active job (the seeded database against its copy with all ended)",
            "jobs_active": active,
            "bytes_per_active_job": round(per_active) if per_active is not None else None,
        },
    }
