"""``make bench``: jobwire's figures beside the ceilings of this machine, measured in the same run.

Starts its own stacks (nats-server, SQLite and PostgreSQL, scheduler, a local executor, gateway) on free
ports in temporary directories, and measures:

- the curve: durable submits/s, p50, p99 and errors at 1, 8, 32 and 128 connections (``wrk`` when
  installed), on each database, beside the bare Litestar route under the same server settings and the
  durable-submit floor on that database (``benchmarks.durable_floor``: the least this design's submit
  can cost);
- end to end: no-op jobs completed/s, a ``POST /v1/jobs:batch`` of ``BENCH_BATCH_JOBS`` completed/s, an
  array of ``BENCH_ARRAY_TASKS`` tasks completed/s, submit -> running on an idle stack, authenticated reads;
- memory: gateway, scheduler, executor and NATS RSS every 10 s over ``BENCH_SOAK_S`` (600) of load at half
  the highest submit rate of the curve (``benchmarks.soak``), and the scheduler's RSS on the million-job
  database beside an empty one (``benchmarks.scale_memory``);
- the references: JetStream publish with ack, SQLite commits, raw ``sbatch`` and ``qsub``
  (``benchmarks.slurm_bench``) beside executor-hpc;
- the read path at a million jobs (``benchmarks.read_bench``; ``BENCH_READ=0`` leaves it out).

Every part runs whatever the others did: a part that fails is recorded in the document with its error
(``{"failed": ...}``, listed in ``failed_parts``) and the run goes on; the document so far is rewritten
to ``bench.partial.json`` after each part. Prints one JSON document and writes it, with a PNG of the curve
and the memory series, to ``BENCH_OUT`` (build/bench). ``BENCH_PARTS`` names the parts to run (default all).

    make bench
    make soak       # the curve, end to end and the 10-minute memory soak on SQLite only
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec

from benchmarks import ceilings, e2e, loadgen, plot, read_bench, scale_memory, slurm_bench
from benchmarks.e2e import NOOP, Watcher, array_rate, batch_rate, idle_latency, read_burst, submit_burst
from benchmarks.ratios import ok, ratios
from benchmarks.soak import soak
from jobwire.stack.processes import free_port
from jobwire.stack.stack import ExecutorConfig, Stack, StackConfig


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


CONNECTIONS = [int(c) for c in os.environ.get("BENCH_CONNECTIONS", "1,8,32,128").split(",")]
CURVE_S = float(os.environ.get("BENCH_CURVE_S", "10"))
JOBS = _env_int("BENCH_JOBS", 1000)
BATCH_JOBS = _env_int("BENCH_BATCH_JOBS", 10_000)
ARRAY_TASKS = _env_int("BENCH_ARRAY_TASKS", 10_000)
SOAK_S = float(os.environ.get("BENCH_SOAK_S", "600"))
SOAK_SAMPLE_S = float(os.environ.get("BENCH_SOAK_SAMPLE_S", "10"))
SOAK_WARMUP_S = float(os.environ.get("BENCH_SOAK_WARMUP_S", "60"))
LATENCY_SAMPLES = _env_int("BENCH_LATENCY_SAMPLES", 50)
SLOTS = _env_int("BENCH_SLOTS", 16)
DATABASES = os.environ.get("BENCH_DATABASES", "sqlite,postgresql").split(",")
HPC_JOBS = _env_int("BENCH_SLURM_JOBS", 200)
SGE_JOBS = _env_int("BENCH_SGE_JOBS", 100)
DRAIN_S = float(os.environ.get("BENCH_DRAIN_S", "120"))
OUT = Path(os.environ.get("BENCH_OUT", "build/bench"))
ALL_PARTS = (
    "bare_route,durable_floor,curve,references,end_to_end,batch,array,latency_idle,reads,soak,slurm,sge,"
    "reads_at_scale"
)
PARTS = set(os.environ.get("BENCH_PARTS", ALL_PARTS).split(","))
if os.environ.get("BENCH_SLURM", "1") == "0":
    PARTS -= {"slurm", "sge"}
if os.environ.get("BENCH_READ", "1") == "0":
    PARTS -= {"reads_at_scale"}
BODY = msgspec.json.encode(NOOP)


def say(what: str) -> None:
    """Progress on stderr: the run is many minutes long, and the JSON comes only at the end."""
    print(f"{time.strftime('%H:%M:%S')} bench: {what}", file=sys.stderr, flush=True)


class Run:
    """The document and its parts: each part runs guarded, is timed, and the document so far is written
    after it, so nothing measured is lost to a later failure."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        doc.setdefault("failed_parts", [])
        doc.setdefault("part_seconds", {})

    def part(self, name: str, where: dict[str, Any], key: str, fn: Callable[[], Any]) -> Any:
        """``where[key] = fn()``; on an exception ``{"failed": ...}`` with its cause instead. Returns the
        value, or None when it failed."""
        say(f"{name}: start (load average {os.getloadavg()[0]:.1f})")
        t = time.perf_counter()
        value: Any = None
        try:
            value = where[key] = fn()
        except Exception as e:
            where[key] = {
                "failed": f"{type(e).__name__}: {e}"[:2000],
                "traceback": traceback.format_exc()[-3000:],
            }
            self.doc["failed_parts"].append(name)
            say(f"{name}: FAILED: {type(e).__name__}: {e}")
        self.doc["part_seconds"][name] = round(time.perf_counter() - t, 1)
        say(f"{name}: done in {self.doc['part_seconds'][name]} s")
        self.write(OUT / "bench.partial.json")
        return value

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.doc, indent=2) + "\n")


def _stack(home: Path, database_url: str | None) -> Stack:
    return Stack(
        StackConfig(
            home=home,
            api_port=free_port(),
            nats_port=free_port(),
            nats_monitor_port=free_port(),
            database_url=database_url,
            # the node declares as many CPUs as slots: a no-op job asks for 1 CPU (the default), so
            # with the machine's own count (2 here) only 2 of the 16 slots ever ran at once
            executors=[ExecutorConfig(node="bench", slots=SLOTS, env={"JOBWIRE_EXECUTOR_CPUS": str(SLOTS)})],
            env={"JOBWIRE_LOG_LEVEL": "WARNING", "JOBWIRE_EXECUTOR_TICK_INTERVAL": "0.05"},
        )
    )


async def _drain(stack: Stack) -> dict[str, float]:
    """Wait (up to ``DRAIN_S``) until no job is queued, starting or running, so each measurement starts
    from an idle stack; says how long that took and what was left."""
    t0 = time.perf_counter()
    active = 0
    async with httpx.AsyncClient(base_url=stack.api_url, headers=stack.auth_headers, timeout=30) as c:
        while time.perf_counter() - t0 < DRAIN_S:
            counts = (await c.get("/v1/jobs/counts")).json()["by_state"]
            active = sum(int(counts.get(s, 0)) for s in ("queued", "starting", "running"))
            if not active:
                break
            await asyncio.sleep(0.5)
    return {"drain_s": round(time.perf_counter() - t0, 1), "left_active": active}


def curve(stack: Stack) -> list[dict[str, Any]]:
    load = loadgen.Load(stack.api_url, "/v1/jobs", BODY, stack.auth_headers)
    loadgen.run(load, CONNECTIONS[0], 1)  # warm-up
    points = []
    for c in CONNECTIONS:
        before = asyncio.run(_drain(stack))
        points.append({**loadgen.run(load, c, CURVE_S), "before": before})
        say(f"curve {c} connections: {points[-1]}")
    asyncio.run(_drain(stack))
    return points


def _watched(stack: Stack, body: Callable[[Watcher], Any]) -> Callable[[], Any]:
    """A part that needs the job events: drained stack first, one subscription for its duration."""

    async def go() -> Any:
        drained = await _drain(stack)
        watcher = Watcher()
        await watcher.start(stack.nats_url)
        try:
            result = await body(watcher)
        finally:
            await watcher.nc.close()
        return {**result, "drained_before": drained} if isinstance(result, dict) else result

    return lambda: asyncio.run(go())


def _end_to_end(stack: Stack, ids: list[str]) -> Callable[[Watcher], Any]:
    async def body(watcher: Watcher) -> dict[str, Any]:
        t0 = time.perf_counter()
        got, _, submit_s = await submit_burst(stack.api_url, JOBS, 32, stack.auth_headers)
        ids.extend(got)
        await watcher.wait_done(got, timeout=900)
        e2e_s = max(watcher.done[i] for i in got) - t0
        return {
            "jobs": JOBS,
            "executor_slots": SLOTS,
            "submit_requests_per_s": round(JOBS / submit_s, 1),
            "seconds_first_submit_to_last_finished": round(e2e_s, 2),
            "jobs_completed_per_s": round(JOBS / e2e_s, 1),
            "not_succeeded": sum(watcher.final.get(i) != "succeeded" for i in got),
            "connections_dropped_and_retried": len(e2e.DROPPED),
        }

    return body


def soak_rate(out: dict[str, Any]) -> tuple[float, str]:
    """Half the highest submit rate of the curve; no more than 80% of the jobs/s the stack completed end
    to end, so the soak measures a steady state and not a backlog growing for ten minutes."""
    curve_points: list[dict[str, Any]] = out["curve"] if isinstance(out.get("curve"), list) else []
    top = max((p["requests_per_s"] for p in curve_points), default=0.0)
    rate = top / 2 if top else 20.0
    basis = f"half the curve's highest submit rate ({top}/s)" if top else "no curve: 20/s"
    done = ok(out, "end_to_end")
    if done and 0.8 * done["jobs_completed_per_s"] < rate:
        rate = 0.8 * done["jobs_completed_per_s"]
        basis += f", capped at 80% of the end-to-end {done['jobs_completed_per_s']} jobs/s"
    return max(1.0, round(rate, 1)), basis


def _postgres(kind: str) -> tuple[Any, str | None]:
    if kind not in ("sqlite", "postgresql"):
        raise ValueError(f"unknown database {kind!r} in BENCH_DATABASES (sqlite, postgresql)")
    if kind == "sqlite":
        return None, None
    if os.environ.get("JOBWIRE_DATABASE_URL", "").startswith("postgresql"):
        return None, os.environ["JOBWIRE_DATABASE_URL"]  # a server of the user's own
    from tests.fixtures.postgres import start_postgres

    server = start_postgres()
    return server, server.database_url("postgres")


def bench_database(run: Run, kind: str, home: Path, first: bool) -> None:
    """The curve on one database; on the first, the end-to-end figures, the soak and the references."""
    out: dict[str, Any] = run.doc["databases"].setdefault(kind, {})
    started: dict[str, Any] = {}

    def start() -> dict[str, Any]:
        server, url = _postgres(kind)
        started["server"], started["url"] = server, url
        stack = started["stack"] = _stack(home / kind, url)
        stack.start()
        what = "throwaway PostgreSQL" if server else "JOBWIRE_DATABASE_URL" if url else "SQLite"
        return {"database": what, "home": str(stack.home)}

    try:
        if run.part(f"{kind}: start", out, "stack", start) is None:
            return
        stack: Stack = started["stack"]
        if "curve" in PARTS:
            run.part(f"{kind}: curve", out, "curve", lambda: curve(stack))
        if "durable_floor" in PARTS:
            floor = lambda: ceilings.durable_floor_curve(CONNECTIONS, CURVE_S, BODY, started["url"])  # noqa: E731
            run.part(f"{kind}: durable-submit floor", out, "durable_floor", floor)
        if not first:
            return
        if "references" in PARTS:
            run.part(f"{kind}: references", out, "references", lambda: _references(stack, home))
        ids: list[str] = []
        if "end_to_end" in PARTS:
            run.part(f"{kind}: end to end", out, "end_to_end", _watched(stack, _end_to_end(stack, ids)))
        if "batch" in PARTS:
            batch = _watched(stack, lambda w: batch_rate(stack, w, BATCH_JOBS))
            run.part(f"{kind}: batch", out, "batch", batch)
        if "array" in PARTS:
            array = _watched(stack, lambda w: array_rate(stack, w, ARRAY_TASKS))
            run.part(f"{kind}: array", out, "array", array)
        if "latency_idle" in PARTS:
            run.part(
                f"{kind}: idle latency",
                out,
                "latency_idle",
                _watched(stack, lambda w: idle_latency(stack, w, LATENCY_SAMPLES)),
            )
        if "reads" in PARTS and ids:
            run.part(
                f"{kind}: reads",
                out,
                "reads",
                lambda: {
                    "requests": len(ids),
                    "concurrent_clients": 32,
                    **asyncio.run(read_burst(stack.api_url, ids, 32, stack.auth_headers)),
                },
            )
        if "soak" in PARTS:
            rate, basis = soak_rate(out)
            load = loadgen.Load(stack.api_url, "/v1/jobs", BODY, stack.auth_headers)

            def memory() -> dict[str, Any]:
                asyncio.run(_drain(stack))
                got = asyncio.run(soak(stack, load, rate, SOAK_S, SOAK_SAMPLE_S, SOAK_WARMUP_S))
                return {"rate_basis": basis, **got}

            run.part(f"{kind}: soak", out, "memory", memory)
    finally:
        stack_or_none: Stack | None = started.get("stack")
        if stack_or_none is not None:
            dead = stack_or_none.dead()
            if run.doc["failed_parts"] and any(p.startswith(kind) for p in run.doc["failed_parts"]):
                logs = OUT / f"logs-{kind}"  # the stack's home is deleted with the run: keep what says why
                shutil.copytree(stack_or_none.home / "logs", logs, dirs_exist_ok=True)
                out["logs"] = str(logs)
            if dead:
                out["services_dead_at_end"] = dead
            stack_or_none.stop()
        if started.get("server") is not None:
            from tests.fixtures.postgres import stop_postgres

            stop_postgres(started["server"])


def _references(stack: Stack, home: Path) -> dict[str, Any]:
    refs: dict[str, Any] = {}
    measures: tuple[tuple[str, Callable[[], Any]], ...] = (
        ("jetstream_publish", lambda: asyncio.run(ceilings.jetstream_publish(stack.nats_url, 2000, 20000))),
        ("sqlite_one_row_per_commit", lambda: ceilings.sqlite_commits(home / "ceiling.db", 5000)),
        ("wrapped_noop_jobs", lambda: ceilings.bare_jobs(home / "bare-wrapped", JOBS, SLOTS, wrapped=True)),
        ("bare_processes", lambda: ceilings.bare_jobs(home / "bare-true", JOBS, SLOTS, wrapped=False)),
    )
    for key, fn in measures:
        try:
            refs[key] = fn()
        except Exception as e:
            refs[key] = {"failed": f"{type(e).__name__}: {e}"}
    return refs


def reads_at_scale(run: Run, home: Path) -> None:
    """``read_bench`` database by database (one failing keeps the other), then, on the seeded SQLite
    file, the scheduler's memory at a million jobs beside an empty database."""
    out: dict[str, Any] = run.doc.setdefault("reads_at_scale", {})
    made: dict[str, read_bench.Data] = {}

    def generate() -> dict[str, Any]:
        t = time.perf_counter()
        made["data"] = read_bench.Data(read_bench.JOBS)
        return {
            "jobs": read_bench.JOBS,
            "samples_per_figure": read_bench.SAMPLES,
            "warmup_requests_per_figure": read_bench.WARMUP,
            "steady_state": "each figure's first WARMUP requests are sent and not timed",
            "one_request_at_a_time": True,
            "target_p99_ms": read_bench.TARGET_P99_MS,
            "generate_seconds": round(time.perf_counter() - t, 1),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        }

    if run.part("reads: generate", out, "data", generate) is None:
        return
    data = made["data"]
    for kind in read_bench.DATABASES:
        where = home / f"reads-{kind}"
        where.mkdir(parents=True, exist_ok=True)
        run.part(f"reads: {kind}", out, kind, lambda k=kind, w=where: read_bench.bench_database(k, data, w))  # type: ignore[misc]
        if kind == "sqlite" and (where / "jobwire.db").exists():
            run.part(
                "scheduler RSS at 1M jobs",
                run.doc,
                "scale_memory",
                lambda w=where: scale_memory.compare(w / "jobwire.db", w / "scale"),  # type: ignore[misc]
            )


def main() -> None:
    started = time.time()
    load_before = os.getloadavg()
    doc: dict[str, Any] = {
        "benchmark": "jobwire: make bench",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": {
            "cores": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "load_average_before": [round(x, 2) for x in load_before],
        },
        "load_generator": loadgen.tool() + " (1 thread, keep-alive, one request in flight per connection)",
        "settings": {
            "parts": sorted(PARTS),
            "curve_seconds": CURVE_S,
            "connections": CONNECTIONS,
            "databases": DATABASES,
            "jobs": JOBS,
            "batch_jobs": BATCH_JOBS,
            "array_tasks": ARRAY_TASKS,
            "soak_seconds": SOAK_S,
            "executor_slots": SLOTS,
            "executor_cpus_declared": SLOTS,
            "gateway_workers": int(os.environ.get("JOBWIRE_GATEWAY_WORKERS", "1")),
            "slurm_jobs": HPC_JOBS,
            "sge_jobs": SGE_JOBS,
        },
        "databases": {},
    }
    run = Run(doc)
    workers = doc["settings"]["gateway_workers"] or os.cpu_count() or 1
    OUT.mkdir(parents=True, exist_ok=True)
    stop_sampling = threading.Event()
    series: list[list[float]] = doc["machine"].setdefault("load_average_series", [])

    def sample_load() -> None:  # the machine is shared: every figure is read beside the load it had
        while not stop_sampling.wait(30):
            series.append([round(time.time() - started), round(os.getloadavg()[0], 2)])

    threading.Thread(target=sample_load, daemon=True).start()
    try:
        if "bare_route" in PARTS:
            run.part(
                "bare route",
                doc,
                "bare_route",
                lambda: ceilings.bare_route_curve(workers, CONNECTIONS, CURVE_S, BODY),
            )
        with tempfile.TemporaryDirectory(prefix="jobwire-bench-") as home:
            for i, kind in enumerate(DATABASES):
                bench_database(run, kind, Path(home), first=i == 0)
            lock_wait = float(os.environ.get("BENCH_SLURM_LOCK_WAIT", "300"))
            if "slurm" in PARTS:
                run.part("slurm", doc, "slurm", lambda: slurm_bench.measure("slurm", HPC_JOBS, lock_wait))
            if "sge" in PARTS:
                run.part("sge", doc, "sge", lambda: slurm_bench.measure("sge", SGE_JOBS, lock_wait))
            if "reads_at_scale" in PARTS:
                reads_at_scale(run, Path(home))
    finally:
        stop_sampling.set()
        doc["ratios"] = ratios(doc)
        doc["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        doc["seconds"] = round(time.time() - started, 1)
        run.write(OUT / "bench.json")
        try:
            plot.bench_png(doc, OUT / "bench.png")
            doc["files"] = [str(OUT / "bench.json"), str(OUT / "bench.png")]
        except Exception as e:
            doc["plot_failed"] = f"{type(e).__name__}: {e}"
            doc["files"] = [str(OUT / "bench.json")]
        run.write(OUT / "bench.json")
        print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
