"""The read path at a million jobs, two checkouts side by side in one sitting (issue 11's before/after).

``read_bench`` measures one checkout; on a shared machine whose load moves by the minute, two runs of it
are not comparable. Here one database is seeded (``read_bench``'s data and cases) and migrated by this
checkout, the store is timed in-process (this checkout's code), and two gateways serve the same
database over HTTP: this checkout's and the one whose Python is ``BENCH_READ_BASE_PYTHON`` (another
worktree's ``.venv/bin/python``: the baseline). Every request goes to both in turn, the order alternating,
so the load hits both alike. The baseline gateway reads the migrated schema as its own (later
migrations only add columns and indexes it does not use).

    BENCH_READ_BASE_PYTHON=/work/wt-base/.venv/bin/python python -m benchmarks.read_ab sqlite out.json
    BENCH_READ_SQLITE=/path/seeded.db ...   # reuse a database read_bench seeded (migrated here first)
    BENCH_READ_POSTGRES_URL=postgresql://... python -m benchmarks.read_ab postgresql out.json   # the same
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks import read_bench as rb
from jobwire.stack.stack import Stack
from jobwire.store import make_engine, migrate


class _Ids:
    """What ``read_bench.cases`` needs of the data: the ids in order."""

    def __init__(self, ids: list[str]) -> None:
        self.ids, self.n = ids, len(ids)


def _gateway(python: str, home: Path, url: str) -> Stack:
    """``read_bench.gateway_only``, its gateway run by ``python`` (the stack starts ``sys.executable``)."""
    own, sys.executable = sys.executable, python
    try:
        return rb.gateway_only(home, url)
    finally:
        sys.executable = own


cpu_seconds = rb.cpu_seconds


async def _http(stacks: dict[str, Stack], figures: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    res: dict[str, dict[str, Any]] = {k: {} for k in stacks}
    pids = {k: s.services["gateway"].pid for k, s in stacks.items()}
    clients = {
        k: httpx.AsyncClient(base_url=s.api_url, headers=s.auth_headers, timeout=30)
        for k, s in stacks.items()
    }
    try:
        for client in clients.values():
            for _ in range(20):  # warm connections and caches
                (await client.get("/v1/jobs", params={"limit": 1})).raise_for_status()
        for figure, samples in figures.items():
            for params in samples[: rb.WARMUP]:  # untimed, as read_bench: each gateway's steady state
                path, query = rb._path(figure, params)
                for client in clients.values():
                    (await client.get(path, params=query)).raise_for_status()
            latencies: dict[str, list[float]] = {k: [] for k in stacks}
            cpu = {k: cpu_seconds(pid) for k, pid in pids.items()}
            for i, params in enumerate(samples):
                path, query = rb._path(figure, params)
                for k in list(stacks) if i % 2 == 0 else list(stacks)[::-1]:
                    t = time.perf_counter()
                    r = await clients[k].get(path, params=query)
                    latencies[k].append(time.perf_counter() - t)
                    r.raise_for_status()
            for k, values in latencies.items():
                res[k][figure] = rb.summary(values)
                used = cpu_seconds(pids[k]) - cpu[k]
                res[k][figure]["gateway_cpu_ms_per_request"] = round(used / len(values) * 1000, 2)
            print(figure, {k: res[k][figure] for k in stacks}, flush=True, file=sys.stderr)
    finally:
        for client in clients.values():
            await client.aclose()
    return res


async def _postgres_ids(url: str) -> list[str]:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return [r[0] for r in await conn.fetch("SELECT id FROM jobs ORDER BY id")]
    finally:
        await conn.close()


def measure(kind: str, base_python: str, home: Path) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "database": kind,
        "jobs": rb.JOBS,
        "samples_per_figure": rb.SAMPLES,
        "warmup_requests_per_figure": rb.WARMUP,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "cores": os.cpu_count(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    server = None
    if kind == "sqlite":
        path = Path(os.environ.get("BENCH_READ_SQLITE") or home / "jobwire.db")
        url = f"sqlite+aiosqlite:///{path}"
        fresh = not path.exists()
        asyncio.run(migrate(url))
        if fresh:
            rb.seed_sqlite(path, rb.Data(rb.JOBS))
        conn = sqlite3.connect(path)
        try:
            conn.execute("ANALYZE")
            data = _Ids([r[0] for r in conn.execute("SELECT id FROM jobs ORDER BY id")])
        finally:
            conn.close()
    elif os.environ.get("BENCH_READ_POSTGRES_URL"):  # a database read_bench's data was seeded into
        url = os.environ["BENCH_READ_POSTGRES_URL"]
        asyncio.run(migrate(url))
        data = _Ids(asyncio.run(_postgres_ids(url)))
    else:
        from tests.fixtures.postgres import start_postgres

        server = start_postgres(options="-c shared_buffers=1GB")
        url = server.database_url("postgres")
        asyncio.run(migrate(url))
        seeded = rb.Data(rb.JOBS)
        asyncio.run(rb.seed_postgres(url, seeded))
        data = _Ids(seeded.ids)
    try:
        figures = rb.cases(data)  # type: ignore[arg-type]  # only .ids and .n are read

        async def in_process() -> tuple[dict[str, Any], bool]:
            engine = make_engine(url)
            try:
                return await rb.measure_store(engine, figures), await rb._count_check(engine)
            finally:
                await engine.dispose()

        doc["store_this_checkout"], doc["counts_table_exact"] = asyncio.run(in_process())
        stacks = {
            "before": _gateway(base_python, home / "stack-before", url),
            "after": _gateway(sys.executable, home / "stack-after", url),
        }
        try:
            doc["http"] = asyncio.run(_http(stacks, figures))
        finally:
            for stack in stacks.values():
                stack.stop()
    finally:
        if server is not None:
            from tests.fixtures.postgres import stop_postgres

            stop_postgres(server)
    doc["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    for k, figs in doc["http"].items():
        doc[f"http_worst_p99_ms_{k}"] = max(f["p99_ms"] for f in figs.values())
    return doc


if __name__ == "__main__":
    kind, out = sys.argv[1], Path(sys.argv[2])
    with tempfile.TemporaryDirectory(prefix="jobwire-read-ab-") as home:
        result = measure(kind, os.environ["BENCH_READ_BASE_PYTHON"], Path(home))
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
