"""The read path at a million stored jobs (issue 11), on SQLite and on PostgreSQL.

Seeds ``BENCH_READ_JOBS`` (1,000,000) jobs straight into the store's own tables (the migrated schema,
its indexes and count triggers all in place): a busy site's spread of owners, nodes, names, labels and
states, the newest jobs the active ones, three transitions per finished job. Then, one request at a time,
the p50/p99 of every list filter, deep cursor pages, the counts (overall, per owner, per node) and one job:
through the real gateway over HTTP, through the store's query functions in-process, and the page's own
SQL run bare on the driver, for comparison. Only NATS and the gateway run (no scheduler: it would start
re-placing the seeded active jobs); PostgreSQL is a throwaway cluster from Debian's binaries, with the
tests' settings (fsync off) and 1 GB of shared buffers.

    python -m benchmarks.read_bench            # prints one JSON document
    BENCH_READ_JOBS=100000 BENCH_READ_DATABASES=sqlite python -m benchmarks.read_bench

``make bench`` runs it after the stack benchmark (``BENCH_READ=0`` leaves it out).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from jobwire.contracts import v1
from jobwire.stack.processes import NatsProcess, free_port
from jobwire.stack.stack import Stack, StackConfig
from jobwire.store import make_engine, migrate, queries
from jobwire.store.bootstrap import local_admin_token
from jobwire.store.reads import Reads

JOBS = int(os.environ.get("BENCH_READ_JOBS", "1000000"))
SAMPLES = int(os.environ.get("BENCH_READ_SAMPLES", "300"))
#: requests of each figure sent and not timed before its samples: a server's steady state is measured (its
#: statement caches, page cache and connections warm for that query's shape), not its first request of it
WARMUP = int(os.environ.get("BENCH_READ_WARMUP", "5"))
DATABASES = os.environ.get("BENCH_READ_DATABASES", "sqlite,postgresql").split(",")
TARGET_P99_MS = 20.0

OWNERS = [f"user{i:02d}" for i in range(50)]
NODES = [f"gpu{i:02d}" for i in range(8)] + [f"cpu{i:02d}" for i in range(8)]
NAMES = [f"train-{i}" for i in range(2000)]
TEAMS = [f"team{i}" for i in range(8)]
TERMINAL = {"succeeded": 86, "failed": 8, "cancelled": 4, "timed_out": 1.5, "lost": 0.5}
ACTIVE = {"queued": 45, "running": 25, "starting": 5, "held": 5, "succeeded": 15, "failed": 5}
#: the newest share of jobs that can still be active (older ones have all finished)
RECENT = 0.05
T0 = datetime(2026, 11, 1, tzinfo=UTC)
SPAN_MS = 30 * 24 * 3600 * 1000  # a month of submissions


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def _uuid7(ms: int, rnd: random.Random) -> str:
    value = (
        (ms & ((1 << 48) - 1)) << 80
        | 0x7 << 76
        | rnd.getrandbits(12) << 64
        | 0b10 << 62
        | rnd.getrandbits(62)
    )
    return str(uuid.UUID(int=value))


class Data:
    """The seeded jobs, made once and written to each database; kept: what the requests ask for."""

    def __init__(self, n: int) -> None:
        rnd = random.Random(2026)
        self.n = n
        owner_w = [1 / (i + 1) for i in range(len(OWNERS))]
        name_w = [1 / (i + 1) ** 0.8 for i in range(len(NAMES))]
        node_w = [3 if n.startswith("gpu") else 1 for n in NODES]
        step = SPAN_MS // n
        owners = rnd.choices(OWNERS, owner_w, k=n)
        names = rnd.choices(NAMES, name_w, k=n)
        nodes = rnd.choices(NODES, node_w, k=n)
        cut = int(n * (1 - RECENT))
        states = rnd.choices(list(TERMINAL), list(TERMINAL.values()), k=cut) + rnd.choices(
            list(ACTIVE), list(ACTIVE.values()), k=n - cut
        )
        self.jobs: list[tuple[Any, ...]] = []
        self.transitions: list[tuple[Any, ...]] = []
        self.labels: list[tuple[Any, ...]] = []
        specs: dict[tuple[str, str, str | None], bytes] = {}
        base_ms = int(T0.timestamp() * 1000)
        for i in range(n):
            ms = base_ms + i * step
            job_id = _uuid7(ms, rnd)
            at = T0 + timedelta(milliseconds=i * step)
            state = states[i]
            node = None if state == "held" or (state == "queued" and i % 10 == 0) else nodes[i]
            team = TEAMS[i % len(TEAMS)] if i % 3 else TEAMS[rnd.randrange(len(TEAMS))]
            exp = f"e{rnd.randrange(1000)}" if i % 10 < 3 else None
            key = (names[i], team, exp)
            spec = specs.get(key)
            if spec is None:
                labels = {"team": team, **({"exp": exp} if exp else {})}
                spec = specs[key] = v1.encode(
                    v1.JobSpec(name=names[i], command=["python", "train.py", "--epochs", "10"], labels=labels)
                )
            finished = state in TERMINAL
            started = at + timedelta(seconds=2) if state in ("running", *TERMINAL) else None
            ended = at + timedelta(seconds=60 + i % 600) if finished else None
            self.jobs.append(
                (
                    job_id, owners[i], names[i], state, node, "local", 1 if state != "queued" else 0, 1,
                    i % 3, 600.0, 1200.0, spec, at, started, ended, started, 0 if state == "succeeded" else (
                        1 if finished else None
                    ),
                )
            )  # fmt: skip
            self.transitions.append((job_id, "queued", at, 0))
            if started is not None:
                self.transitions.append((job_id, "running", started, 1))
            if ended is not None:
                self.transitions.append((job_id, state, ended, 1))
            self.labels.append((job_id, "team", team))
            if exp:
                self.labels.append((job_id, "exp", exp))
        self.ids = [j[0] for j in self.jobs]


_JOB_COLUMNS = (
    "id", "owner", "name", "state", "node", "backend", "attempt", "max_attempts", "priority",
    "expected_runtime", "timeout", "spec", "created_at", "started_at", "ended_at", "dispatched_at",
    "exit_code",
)  # fmt: skip


def _chunks(rows: list[tuple[Any, ...]], size: int = 50_000) -> Iterator[list[tuple[Any, ...]]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def seed_sqlite(path: Path, data: Data) -> None:
    """Straight through the stdlib driver, in the text format SQLAlchemy stores datetimes in."""

    def ts(value: datetime | None) -> str | None:
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if value else None

    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # Nobody else is connected: no journal, and a cache that holds the indexes being filled in
        # random order (the default 2 MiB one makes each insert a page read); WAL again afterwards.
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-2000000")
        conn.execute("BEGIN")
        cols = ", ".join(_JOB_COLUMNS)
        marks = ", ".join("?" * len(_JOB_COLUMNS))
        for chunk in _chunks(data.jobs):
            conn.executemany(
                f"INSERT INTO jobs ({cols}, cancel_requested, delete_requested) VALUES ({marks}, 0, 0)",  # noqa: S608 - our column names
                [(*j[:12], ts(j[12]), ts(j[13]), ts(j[14]), ts(j[15]), j[16]) for j in chunk],
            )
        for chunk in _chunks(data.transitions):
            conn.executemany(
                "INSERT INTO job_transitions (job_id, state, at, attempt) VALUES (?, ?, ?, ?)",
                [(t[0], t[1], ts(t[2]), t[3]) for t in chunk],
            )
        for chunk in _chunks(data.labels):
            conn.executemany("INSERT INTO job_labels (job_id, key, value) VALUES (?, ?, ?)", chunk)
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


async def seed_postgres(url: str, data: Data) -> None:
    """COPY into each table (the statement-level count trigger sees every row)."""
    import asyncpg

    def naive(value: datetime | None) -> datetime | None:
        return value.astimezone(UTC).replace(tzinfo=None) if value else None

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        async with conn.transaction():
            await conn.copy_records_to_table(
                "jobs",
                records=[
                    (*j[:12], naive(j[12]), naive(j[13]), naive(j[14]), naive(j[15]), j[16], False, False)
                    for j in data.jobs
                ],
                columns=[*_JOB_COLUMNS, "cancel_requested", "delete_requested"],
            )
            await conn.copy_records_to_table(
                "job_transitions",
                records=[(t[0], t[1], naive(t[2]), t[3]) for t in data.transitions],
                columns=["job_id", "state", "at", "attempt"],
            )
            await conn.copy_records_to_table(
                "job_labels", records=data.labels, columns=["job_id", "key", "value"]
            )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def cases(data: Data) -> dict[str, list[dict[str, Any]]]:
    """Query parameters of each figure, varied over owners, nodes, names, labels (one list per figure)."""
    rnd = random.Random(7)

    def vary(make: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
        return [make() for _ in range(SAMPLES)]

    def cursor_at(depth: float) -> Callable[[], dict[str, Any]]:
        return lambda: {
            "cursor": queries.encode_cursor(data.ids[int(data.n * (1 - depth * rnd.uniform(0.95, 1)))])
        }

    busiest = OWNERS[:5]
    return {
        "newest_page": vary(dict),
        "state=failed": vary(lambda: {"state": "failed"}),
        "state=queued": vary(lambda: {"state": "queued"}),
        "state=lost": vary(lambda: {"state": "lost"}),
        "state=queued,running,starting": vary(lambda: {"state": "queued,running,starting"}),
        "node": vary(lambda: {"node": rnd.choice(NODES)}),
        "owner": vary(lambda: {"owner": rnd.choice(OWNERS)}),
        "owner+state=failed": vary(lambda: {"owner": rnd.choice(busiest), "state": "failed"}),
        "name": vary(lambda: {"name": rnd.choice(NAMES[:200])}),
        "label team": vary(lambda: {"label": f"team={rnd.choice(TEAMS)}"}),
        "label exp": vary(lambda: {"label": f"exp=e{rnd.randrange(1000)}"}),
        "cursor depth 10%": vary(cursor_at(0.1)),
        "cursor depth 50%": vary(cursor_at(0.5)),
        "cursor depth 99%": vary(cursor_at(0.99)),
        "state=failed deep (50% of its jobs)": vary(
            lambda: {
                "state": "failed",
                "cursor": queries.encode_cursor(data.ids[int(data.n * rnd.uniform(0.4, 0.6))]),
            }
        ),
        "counts": vary(dict),
        "counts owner": vary(lambda: {"owner": rnd.choice(OWNERS)}),
        "counts node": vary(lambda: {"node": rnd.choice(NODES)}),
        "one job": [{"id": rnd.choice(data.ids)} for _ in range(SAMPLES)],
    }


def _store_call(figure: str, params: dict[str, Any]) -> Callable[[Session], Any]:
    """The read the gateway makes for a figure: one of the store's synchronous queries on a session."""
    if figure == "one job":
        return lambda s: queries.get_job_sync(s, params["id"])
    if figure.startswith("counts"):
        return lambda s: queries.count_jobs_sync(s, **params)
    labels = dict([params["label"].split("=", 1)]) if "label" in params else None
    states = params["state"].split(",") if "state" in params else None
    return lambda s: queries.list_jobs_sync(
        s,
        states=states,
        node=params.get("node"),
        name=params.get("name"),
        owner=params.get("owner"),
        labels=labels,
        cursor=params.get("cursor"),
    )


def _path(figure: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if figure == "one job":
        return f"/v1/jobs/{params['id']}", {}
    return ("/v1/jobs/counts" if figure.startswith("counts") else "/v1/jobs"), params


def summary(latencies: list[float]) -> dict[str, float]:
    """p50 and p99 (the p99 of fewer than 100 samples is their maximum: ``samples`` says how many), and
    the maximum apart."""
    return {
        "p50_ms": round(pct(latencies, 50) * 1000, 2),
        "p99_ms": round(pct(latencies, 99) * 1000, 2),
        "max_ms": round(max(latencies, default=float("nan")) * 1000, 2),
        "samples": len(latencies),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its threads so far (``/proc/PID/stat``): what a request costs
    the gateway, which the machine's load does not change the way it changes latencies."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure_store(engine: AsyncEngine, figures: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """In-process: the store's query functions as the gateway calls them (``Resources.read``, that is
    ``jobwire.store.reads``: on SQLite a synchronous session in a worker thread, on PostgreSQL one greenlet
    of an async session in autocommit; the session's opening and closing timed with it), then the page's
    own SQL alone."""
    reads = Reads(engine.url.render_as_string(hide_password=False))
    watched = reads.watched
    sent: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    async def read(call: Callable[[Session], Any]) -> Any:
        return await reads(call)

    out: dict[str, Any] = {}
    try:
        for figure, samples in figures.items():
            for params in samples[:WARMUP]:  # not timed: the statement's first compile and plan
                await read(_store_call(figure, params))
            store, raw = [], []
            for params in samples:
                sent.clear()
                event.listen(watched, "before_cursor_execute", record)
                try:
                    t = time.perf_counter()
                    await read(_store_call(figure, params))
                    store.append(time.perf_counter() - t)
                finally:
                    event.remove(watched, "before_cursor_execute", record)
                statement, parameters = sent[0]  # the page, the row or the counts; then the transitions
                async with engine.connect() as conn:
                    t = time.perf_counter()
                    (await conn.exec_driver_sql(statement, parameters)).all()
                    raw.append(time.perf_counter() - t)
            out[figure] = {"store": summary(store), "sql": summary(raw), "queries": len(sent)}
    finally:
        await reads.dispose()
    return out


async def measure_http(
    api: str,
    headers: dict[str, str],
    figures: dict[str, list[dict[str, Any]]],
    gateway_pid: int | None = None,
) -> dict[str, Any]:
    """One request at a time per figure, after ``WARMUP`` untimed ones of it; with ``gateway_pid``, the
    gateway's CPU per timed request beside the latencies (the load of others moves latencies far more)."""
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=30) as client:
        for _ in range(20):  # warm the connection and the gateway's caches
            (await client.get("/v1/jobs", params={"limit": 1})).raise_for_status()
        for figure, samples in figures.items():
            for params in samples[:WARMUP]:
                path, query = _path(figure, params)
                (await client.get(path, params=query)).raise_for_status()
            latencies = []
            cpu = cpu_seconds(gateway_pid) if gateway_pid is not None else 0.0
            for params in samples:
                path, query = _path(figure, params)
                t = time.perf_counter()
                r = await client.get(path, params=query)
                latencies.append(time.perf_counter() - t)
                r.raise_for_status()
            out[figure] = summary(latencies)
            if gateway_pid is not None:
                used = cpu_seconds(gateway_pid) - cpu
                out[figure]["gateway_cpu_ms_per_request"] = round(used / len(samples) * 1000, 2)
    return out


def gateway_only(home: Path, db_url: str) -> Stack:
    """NATS and the gateway of the embedded stack on the seeded database (no scheduler, no executor)."""
    stack = Stack(StackConfig(home=home, api_port=free_port(), database_url=db_url, executors=[],
                              env={"JOBWIRE_LOG_LEVEL": "WARNING"}))  # fmt: skip
    stack.nats = NatsProcess(stack.home, free_port(), free_port(), None)
    stack.nats.start()
    stack.token, _ = local_admin_token(db_url, "bench-admin", home / "token")
    stack.start_service("gateway")
    stack.wait_ready()
    return stack


async def _count_check(engine: AsyncEngine) -> bool:
    """The triggers' counts equal a full count (they saw every seeded row): the exact rows and the
    overall rollup alike."""
    async with engine.connect() as conn:
        exact = await conn.execute(
            text("SELECT coalesce(sum(n), 0) FROM job_counts WHERE owner <> '*' AND node <> '*'")
        )
        overall = await conn.execute(
            text("SELECT coalesce(sum(n), 0) FROM job_counts WHERE owner = '*' AND node = '*'")
        )
        real = (await conn.execute(text("SELECT count(*) FROM jobs"))).scalar_one()
    return int(exact.scalar_one()) == int(overall.scalar_one()) == int(real)


def bench_database(kind: str, data: Data, home: Path) -> dict[str, Any]:
    # this process times every request, and holds the seeded data (lists of millions of rows): a full
    # collection walking them lands in whichever sample it interrupts, a pause of the client's own that
    # the server never had (the 300 ms single store outliers); frozen, the collector leaves them alone
    gc.collect()
    gc.freeze()
    server = None
    if kind == "sqlite":
        path = home / "jobwire.db"
        url = f"sqlite+aiosqlite:///{path}"
    else:
        from tests.fixtures.postgres import start_postgres

        server = start_postgres(options="-c shared_buffers=1GB")  # PostgreSQL's default 128 MB is a toy
        url = server.database_url("postgres")
    try:
        asyncio.run(migrate(url))
        t = time.perf_counter()
        if kind == "sqlite":
            seed_sqlite(path, data)
        else:
            asyncio.run(seed_postgres(url, data))
        seed_s = time.perf_counter() - t
        figures = cases(data)

        async def in_process() -> tuple[dict[str, Any], bool]:
            engine = make_engine(url)
            try:
                return await measure_store(engine, figures), await _count_check(engine)
            finally:
                await engine.dispose()

        store, counts_exact = asyncio.run(in_process())
        stack = gateway_only(home / f"stack-{kind}", url)
        try:
            pid = stack.services["gateway"].pid
            http = asyncio.run(measure_http(stack.api_url, stack.auth_headers, figures, pid))
        finally:
            stack.stop()
    finally:
        if server is not None:
            from tests.fixtures.postgres import stop_postgres

            stop_postgres(server)
    worst = max(f["p99_ms"] for f in http.values())
    return {
        "seed_seconds": round(seed_s, 1),
        "rows": {"jobs": data.n, "transitions": len(data.transitions), "labels": len(data.labels)},
        "counts_table_exact_after_seeding": counts_exact,
        "http_worst_p99_ms": worst,
        "http_all_under_target": worst < TARGET_P99_MS,
        "figures": {f: {"http": http[f], **store[f]} for f in figures},
    }


def measure() -> dict[str, Any]:
    t = time.perf_counter()
    data = Data(JOBS)
    made = time.perf_counter() - t
    out: dict[str, Any] = {
        "jobs": JOBS,
        "samples_per_figure": SAMPLES,
        "warmup_requests_per_figure": WARMUP,
        "steady_state": "each figure's first WARMUP requests are sent and not timed",
        "one_request_at_a_time": True,
        "target_p99_ms": TARGET_P99_MS,
        "generate_seconds": round(made, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "cores": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory(prefix="jobwire-read-bench-") as home:
        for kind in DATABASES:
            out[kind] = bench_database(kind, data, Path(home))
    return out


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
