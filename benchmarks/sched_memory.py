"""The scheduler alone on three databases, to tell stored jobs from active ones (issue 11: "1M stored
jobs do not grow the scheduler's memory").

Each database is opened by a fresh scheduler process (NATS beside it, no gateway, no executor) that
rebuilds its view and then idles; once its RSS has settled it is sampled, and its CPU per idle second
is read from /proc (utime + stime), the tick's steady cost:

- ``empty``: nothing stored;
- ``ended``: ``BENCH_MEM_JOBS`` jobs, every one ended long ago (the issue's claim: flat against empty);
- ``recent``: the same jobs, all ended within the last hour (fair share reads back their usage on start);
- ``active``: the same jobs with read_bench's spread of states, the newest few percent active
  (queued, held, starting, running): the scheduler holds those, so their memory is per active job.

    python -m benchmarks.sched_memory                 # one JSON document
    BENCH_MEM_TRACE=1 python -m benchmarks.sched_memory   # plus tracemalloc's top allocations
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import read_bench
from benchmarks.soak import rss_bytes
from jobwire.stack.processes import NatsProcess, free_port
from jobwire.store import migrate

JOBS = int(os.environ.get("BENCH_MEM_JOBS", "1000000"))
#: seconds the scheduler idles after its view is rebuilt, sampled once a second
SETTLE_S = float(os.environ.get("BENCH_MEM_SETTLE_S", "10"))
#: seconds of idle CPU measured after settling
IDLE_S = float(os.environ.get("BENCH_MEM_IDLE_S", "10"))
TRACE = os.environ.get("BENCH_MEM_TRACE", "") == "1"
KINDS = os.environ.get("BENCH_MEM_KINDS", "empty,ended,recent,active").split(",")
ACTIVE = ("queued", "held", "starting", "running")


def seed(home: Path, n: int) -> dict[str, Path]:
    """The databases: empty, ``n`` jobs ended long ago, the same ended within fair share's window
    (``recent``), and the same with read_bench's active jobs. Each has read_bench's nodes, down (no
    executor runs here): what ran on them is held as running, what was queued on them waits pending."""
    home.mkdir(parents=True, exist_ok=True)
    paths = {k: home / f"{k}.db" for k in ("empty", "ended", "recent", "active")}
    for path in paths.values():
        path.unlink(missing_ok=True)
    asyncio.run(migrate(f"sqlite+aiosqlite:///{paths['empty']}"))
    _nodes(paths["empty"])
    shutil.copyfile(paths["empty"], paths["active"])
    read_bench.seed_sqlite(paths["active"], read_bench.Data(n))
    _no_timeouts(paths["active"])
    marks = ", ".join("?" * len(ACTIVE))
    for kind in ("ended", "recent"):
        shutil.copyfile(paths["active"], paths[kind])
        conn = sqlite3.connect(paths[kind], isolation_level=None)
        try:
            conn.execute(
                "UPDATE jobs SET state = 'succeeded', exit_code = 0, node = coalesce(node, 'cpu00'), "  # noqa: S608
                "started_at = coalesce(started_at, created_at), "
                "dispatched_at = coalesce(dispatched_at, created_at) "
                f"WHERE state IN ({marks})",
                ACTIVE,
            )
            if kind == "ended":  # ended as seeded: weeks ago, past any fair-share window
                continue
            # every run ended within the last hour (one fair-share half-life), after a minute's run
            conn.execute(
                "UPDATE jobs SET ended_at = strftime('%Y-%m-%d %H:%M:%f000', 'now', "
                "'-' || (abs(random()) % 3600) || ' seconds')"
            )
            conn.execute(
                "UPDATE jobs SET started_at = strftime('%Y-%m-%d %H:%M:%f000', ended_at, '-60 seconds'), "
                "dispatched_at = strftime('%Y-%m-%d %H:%M:%f000', ended_at, '-61 seconds')"
            )
        finally:
            conn.close()
    return paths


def _no_timeouts(path: Path) -> None:
    """The seeded runs started weeks ago with a 20-minute timeout: the scheduler's backstop would end
    them while it is measured. Without one they are held as they are, which is what is measured."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("UPDATE jobs SET timeout = NULL WHERE state IN ('starting', 'running')")
    finally:
        conn.close()


def _nodes(path: Path) -> None:
    """read_bench's nodes, registered and down."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for name in read_bench.NODES:
            gpus = 4 if name.startswith("gpu") else 0
            capacity = json.dumps({"slots": 16, "cpus": 32.0, "gpus": gpus}).encode()
            conn.execute(
                "INSERT INTO nodes (name, backend, state, capacity, labels, registered_at, last_heartbeat) "
                "VALUES (?, 'local', 'down', ?, ?, ?, ?)",
                (name, capacity, b"{}", "2026-11-01 00:00:00.000000", "2026-12-01 00:00:00.000000"),
            )
    finally:
        conn.close()


def stored(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        total = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
        marks = ", ".join("?" * len(ACTIVE))
        by_state = dict(
            conn.execute(f"SELECT state, count(*) FROM jobs WHERE state IN ({marks}) GROUP BY state", ACTIVE)  # noqa: S608
        )
    finally:
        conn.close()
    return {"jobs_stored": int(total), "jobs_active": sum(by_state.values()), "active_by_state": by_state}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(db: Path, home: Path) -> dict[str, Any]:
    """A fresh scheduler on ``db``: RSS once settled, CPU per idle second, and (``TRACE``) where the
    Python heap goes."""
    home.mkdir(parents=True, exist_ok=True)
    nats = NatsProcess(home, free_port(), free_port(), None)
    nats.start()
    env = {
        **os.environ,
        "JOBWIRE_NATS_URL": nats.url,
        "JOBWIRE_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "JOBWIRE_LOG_LEVEL": "WARNING",
        "JOBWIRE_SCHEDULER_INSTANCE": "bench",
        "BENCH_MEM_CHILD_OUT": str(home / "child.json"),
    }
    before = stored(db)
    started = time.monotonic()
    argv = [sys.executable, "-m", "benchmarks.sched_memory", "--child"]
    child = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE)
    try:
        ready = home / "child.ready"
        while not ready.exists():
            if child.poll() is not None:
                raise RuntimeError(f"scheduler child exited {child.returncode}")
            time.sleep(0.2)
        ready_s = time.monotonic() - started
        samples = []
        for _ in range(int(SETTLE_S)):
            samples.append(rss_bytes(child.pid, children=False))
            time.sleep(1.0)
        load = os.getloadavg()
        cpu0, t0 = cpu_seconds(child.pid), time.monotonic()
        time.sleep(IDLE_S)
        cpu1, t1 = cpu_seconds(child.pid), time.monotonic()
        rss = rss_bytes(child.pid, children=False)
        assert child.stdin is not None
        child.stdin.close()  # the child's go: it writes what it traced and stops
        child.wait(timeout=300)
    finally:
        if child.poll() is None:
            child.kill()
        nats.process.stop()
    traced = json.loads((home / "child.json").read_text()) if (home / "child.json").exists() else {}
    mib = 2**20
    return {
        **before,
        "ready_s": round(ready_s, 1),
        "rss_mib": round(rss / mib, 1),
        "rss_mib_settling_median": round(statistics.median(samples) / mib, 1) if samples else None,
        "idle_cpu_ms_per_s": round((cpu1 - cpu0) / (t1 - t0) * 1000, 2),
        "load_average": [round(x, 2) for x in load],
        **traced,
    }


async def _child() -> None:
    """The scheduler in this process (tracemalloc on when ``TRACE``), until the parent says go."""
    import tracemalloc

    from jobwire.runtime.settings import bus_settings
    from jobwire.scheduler.service import Scheduler
    from jobwire.scheduler.settings import scheduler_settings

    if TRACE:
        tracemalloc.start(4)
    out = Path(os.environ["BENCH_MEM_CHILD_OUT"])
    scheduler = Scheduler(scheduler_settings(), bus_settings())
    await scheduler.start()
    cluster = scheduler.cluster
    view = {
        "pending": len(cluster.pending),
        "queued_on_nodes": len(cluster.queued_on),
        "running": len(cluster.running_on),
        "waits": len(cluster.waits.unmet),
    }
    (out.parent / "child.ready").touch()
    await asyncio.to_thread(sys.stdin.read)  # until the parent closes it
    doc: dict[str, Any] = {"view": view}
    if TRACE:
        snap = tracemalloc.take_snapshot()
        doc["traced_mib"] = round(sum(s.size for s in snap.statistics("filename")) / 2**20, 1)
        doc["top"] = [
            {"where": str(s.traceback), "kib": round(s.size / 1024), "count": s.count}
            for s in snap.statistics("lineno")[:15]
        ]
    await asyncio.to_thread(out.write_text, json.dumps(doc))
    await scheduler.stop()


def main() -> None:
    if "--child" in sys.argv:
        asyncio.run(_child())
        return
    keep = os.environ.get("BENCH_MEM_HOME")
    home = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="jobwire-mem-"))
    t0 = time.monotonic()
    paths = (
        {k: home / f"{k}.db" for k in ("empty", "ended", "recent", "active")}
        if keep and (home / "active.db").exists()
        else seed(home, JOBS)
    )
    seed_s = time.monotonic() - t0
    runs = {}
    for kind in KINDS:
        path = paths[kind]
        work = home / f"run-{kind}"
        shutil.rmtree(work, ignore_errors=True)
        scratch = home / f"{kind}-run.db"
        shutil.copyfile(path, scratch)  # the scheduler writes (migrations, nodes): keep the seed clean
        runs[kind] = measure(scratch, work)
        for leftover in (scratch, Path(f"{scratch}-wal"), Path(f"{scratch}-shm")):
            leftover.unlink(missing_ok=True)
    print(json.dumps({"jobs": JOBS, "seed_s": round(seed_s, 1), **runs}, indent=1))


if __name__ == "__main__":
    main()
