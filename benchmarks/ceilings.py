"""The references each jobwire figure is measured against, in the same run on the same machine.

- the bare route: a Litestar route decoding the same JobSpec with msgspec, under the gateway's own
  uvicorn settings (``benchmarks.bare_route``), loaded exactly like the gateway;
- JetStream publish with ack (what a durable submit needs at least), one at a time and pipelined;
- SQLite, one row per commit in WAL mode with the store's pragmas (what storing a job needs at least);
- the durable-submit floor: the bare route plus what a durable submit cannot skip (a JetStream publish
  with ack, a second process committing the batch to SQLite and replying), ``benchmarks.durable_floor``;
- raw ``sbatch --wrap=true`` on the project's test SLURM (``bench_slurm``);
- no-op jobs with nothing around them: each only the attempt wrapper the local executor runs (its default
  log cap, the pipes made ahead), and each only ``/bin/true``, started as the executor starts them, as
  many at once as the bench's slots: what the end-to-end figure can reach on this machine at most.
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nats
from nats.js.api import StorageType, StreamConfig

from benchmarks import loadgen
from jobwire.stack.processes import NatsProcess, free_port


@contextmanager
def _server(args: list[str], port: int, what: str) -> Iterator[str]:
    """``python -m ARGS`` serving on ``port`` for as long as the block runs; yields its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"the {what} server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def bare_route(workers: int) -> Iterator[str]:
    """The bare-route server on a free port, for as long as the block runs; yields its URL."""
    port = free_port()
    with _server(["benchmarks.bare_route", str(port), str(workers)], port, "bare-route") as url:
        yield url


@contextmanager
def durable_floor(home: Path, database_url: str | None = None) -> Iterator[str]:
    """A NATS server of its own, the floor's writer (SQLite in ``home``, or ``database_url``'s
    PostgreSQL) and its route; yields the route's URL."""
    nats_proc = NatsProcess(home, free_port(), free_port(), None)
    nats_proc.start()
    database = database_url or str(home / "floor.db")
    writer = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.durable_floor", "store", nats_proc.url, database],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port = free_port()
        route = ["benchmarks.durable_floor", "route", str(port), nats_proc.url]
        with _server(route, port, "floor route") as url:
            yield url
    finally:
        writer.terminate()
        writer.wait(10)
        nats_proc.process.stop()


async def jetstream_publish(url: str, sequential: int, pipelined: int, window: int = 256) -> dict[str, float]:
    """Publishes acknowledged by a file-backed stream: one at a time, then ``window`` in flight."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(name="BENCH_CEILING", subjects=["bench.ceiling.>"], storage=StorageType.FILE)
    )
    payload = b'{"command":["true"],"expected_runtime":1}' * 4
    try:
        t0 = time.perf_counter()
        for i in range(sequential):
            await js.publish("bench.ceiling.seq", payload, headers={"Nats-Msg-Id": f"s{i}"})
        seq = sequential / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for start in range(0, pipelined, window):
            await asyncio.gather(
                *(
                    js.publish("bench.ceiling.pipe", payload, headers={"Nats-Msg-Id": f"p{i}"})
                    for i in range(start, min(pipelined, start + window))
                )
            )
        pipe = pipelined / (time.perf_counter() - t0)
    finally:
        await js.delete_stream("BENCH_CEILING")
        await nc.close()
    return {"sequential_per_s": round(seq, 1), "pipelined_per_s": round(pipe, 1), "window": window}


def sqlite_commits(path: Path, rows: int) -> dict[str, float]:
    """One INSERT per COMMIT, WAL and the store's pragmas (``synchronous=NORMAL``), a job-sized row."""
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "busy_timeout=5000", "synchronous=NORMAL"):
        db.execute(f"PRAGMA {pragma}")
    db.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, state TEXT, spec TEXT, created_at TEXT)")
    spec = '{"command":["true"],"expected_runtime":1}' * 8
    t0 = time.perf_counter()
    for i in range(rows):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO jobs VALUES (?, 'queued', ?, ?)", (f"{i:032d}", spec, time.time()))
        db.execute("COMMIT")
    rate = rows / (time.perf_counter() - t0)
    db.close()
    return {"commits_per_s": round(rate, 1), "rows": rows}


def bare_jobs(root: Path, jobs: int, parallel: int, wrapped: bool) -> dict[str, float]:
    """``jobs`` no-op jobs, ``parallel`` at once, each started by ``posix_spawn`` as a session leader
    like the local executor starts them and waited for: with ``wrapped``, through the attempt wrapper
    (``jobwire.execution.attempt.layout``) with the default log cap and the pipes made ahead, as the
    local transport does; without, ``/bin/true`` alone. No bus, database or bookkeeping: the most
    no-op jobs/s this machine completes that way."""
    from jobwire.execution.attempt.layout import WRAPPER_SCRIPT
    from jobwire.runtime.settings import LOG_MAX_BYTES_PER_JOB

    wrapper = root / "wrapper.sh"
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    wrapper.write_text(WRAPPER_SCRIPT)
    env = {"PATH": "/usr/bin:/bin"}
    quiet = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]

    def start(i: int) -> int:
        if not wrapped:
            return os.posix_spawn("/bin/true", ["true"], env, file_actions=quiet, setsid=True)
        d = root / str(i)
        (d / "work").mkdir(parents=True)
        for stream in ("stdout", "stderr"):
            os.mkfifo(d / f"{stream}.fifo", 0o600)
        argv = ["sh", str(wrapper), str(d), str(d / "work"), str(LOG_MAX_BYTES_PER_JOB), "true"]
        return os.posix_spawn("/bin/sh", argv, env, file_actions=quiet, setsid=True)

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    running = {start(i) for i in range(min(parallel, jobs))}
    started = len(running)
    failed = 0
    while running:
        pid, status = os.wait()
        running.discard(pid)
        failed += os.waitstatus_to_exitcode(status) != 0
        if started < jobs:
            running.add(start(started))
            started += 1
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {
        "jobs": jobs,
        "parallel": parallel,
        "jobs_per_s": round(jobs / elapsed, 1),
        "cpu_ms_per_job": round(cpu / jobs * 1000, 2),
        "nonzero_exits": failed,
    }


def bare_route_curve(
    workers: int, connections: list[int], seconds: float, body: bytes
) -> list[dict[str, object]]:
    with bare_route(workers) as url:
        load = loadgen.Load(url, "/v1/jobs", body, {})
        loadgen.run(load, connections[0], 1)  # warm-up
        return [loadgen.run(load, c, seconds) for c in connections]


def durable_floor_curve(
    connections: list[int], seconds: float, body: bytes, database_url: str | None = None
) -> list[dict[str, object]]:
    """The durable-submit floor loaded like the gateway (same body, connections and seconds), writing
    to SQLite or to ``database_url``'s PostgreSQL."""
    with (
        tempfile.TemporaryDirectory(prefix="jobwire-floor-") as home,
        durable_floor(Path(home), database_url) as url,
    ):
        load = loadgen.Load(url, "/v1/jobs", body, {})
        loadgen.run(load, connections[0], 1)  # warm-up
        return [loadgen.run(load, c, seconds) for c in connections]
