"""``make bench``: jobwire's figures beside the ceilings of this machine, measured in the same run.

Starts its own stacks (nats-server, SQLite and PostgreSQL, scheduler, a local executor, gateway) on free
ports in temporary directories, and measures:

- the curve: durable submits/s, p50, p99 and errors at 1, 8, 32 and 128 connections (``wrk`` when
  installed), on each database, beside the bare Litestar route under the same server settings;
- end to end: no-op jobs completed/s, a ``POST /v1/jobs:batch`` of ``BENCH_BATCH_JOBS`` completed/s, an
  array of ``BENCH_ARRAY_TASKS`` tasks completed/s,
  submit -> running on an idle stack, authenticated reads;
- memory: gateway and scheduler RSS over ``BENCH_SOAK_S`` of load at half the 32-connection rate;
- the references: JetStream publish with ack, SQLite commits, raw ``sbatch`` (``benchmarks.slurm_bench``);
- the read path at a million jobs (``benchmarks.read_bench``; ``BENCH_READ=0`` leaves it out).

Prints one JSON document and writes it, with a PNG of the curve, to ``BENCH_OUT`` (build/bench).

    make bench
    BENCH_CURVE_S=20 BENCH_SOAK_S=600 make bench     # the 10-minute memory soak
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

from benchmarks import ceilings, e2e, loadgen, plot, read_bench, slurm_bench
from benchmarks.e2e import NOOP, Watcher, array_rate, batch_rate, idle_latency, read_burst, submit_burst
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
SOAK_S = float(os.environ.get("BENCH_SOAK_S", "30"))
LATENCY_SAMPLES = _env_int("BENCH_LATENCY_SAMPLES", 50)
SLOTS = _env_int("BENCH_SLOTS", 16)
DATABASES = os.environ.get("BENCH_DATABASES", "sqlite,postgresql").split(",")
SLURM_JOBS = _env_int("BENCH_SLURM_JOBS", 200)
DRAIN_S = float(os.environ.get("BENCH_DRAIN_S", "120"))
OUT = Path(os.environ.get("BENCH_OUT", "build/bench"))
BODY = msgspec.json.encode(NOOP)
#: the issue's targets (issue 11), each beside the reference it is a share of
TARGETS = {"submit_ratio": 0.7, "submit_p99_ms": 50.0, "jobs_per_s": 500.0, "submit_to_running_ms_p50": 50.0}


def say(what: str) -> None:
    """Progress on stderr: the run is minutes long, and the JSON comes only at the end."""
    print(f"{time.strftime('%H:%M:%S')} bench: {what}", file=sys.stderr, flush=True)


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
    """Wait (up to ``DRAIN_S``) until no job is queued, starting or running, so each point of the curve
    starts from an idle stack; says how long that took and what was left."""
    t0 = time.perf_counter()
    active = 0
    async with httpx.AsyncClient(base_url=stack.api_url, headers=stack.auth_headers, timeout=30) as c:
        while time.perf_counter() - t0 < DRAIN_S:
            counts = (await c.get("/v1/jobs/counts")).json()
            counts = counts["by_state"]
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


def bench_database(kind: str, home: Path, first: bool) -> dict[str, Any]:
    """The curve on one database; on the first, the end-to-end figures, the soak and the references."""
    server = None
    url = None
    if kind == "postgresql" and os.environ.get("JOBWIRE_DATABASE_URL", "").startswith("postgresql"):
        url = os.environ["JOBWIRE_DATABASE_URL"]  # a server of the user's own instead of a throwaway one
    elif kind == "postgresql":
        from tests.fixtures.postgres import start_postgres

        try:
            server = start_postgres()
        except BaseException as e:
            return {"skipped": str(e)}
        url = server.database_url("postgres")
    stack = _stack(home / kind, url)
    say(f"{kind}: starting the stack")
    stack.start()
    try:
        out: dict[str, Any] = {"curve": curve(stack)}
        if first:
            out["references"] = {
                "jetstream_publish": asyncio.run(ceilings.jetstream_publish(stack.nats_url, 2000, 20000)),
                "sqlite_one_row_per_commit": ceilings.sqlite_commits(home / "ceiling.db", 5000),
            }
            say(f"references: {out['references']}")
            out.update(asyncio.run(_end_to_end(stack)))
            say(f"end to end: {out['end_to_end']}, batch: {out['batch']}")
            p32 = next((p for p in out["curve"] if p["connections"] == 32), out["curve"][-1])
            out["memory"] = asyncio.run(
                soak(
                    stack,
                    loadgen.Load(stack.api_url, "/v1/jobs", BODY, stack.auth_headers),
                    rate=max(1.0, p32["requests_per_s"] / 2),
                    seconds=SOAK_S,
                )
            )
        say(f"{kind}: done")
        return out
    except BaseException:
        logs = OUT / f"logs-{kind}"  # the stack's home is deleted with the run: keep what says why
        shutil.copytree(stack.home / "logs", logs, dirs_exist_ok=True)
        say(f"{kind}: failed; the services' logs are in {logs}")
        raise
    finally:
        stack.stop()
        if server is not None:
            from tests.fixtures.postgres import stop_postgres

            stop_postgres(server)


async def _end_to_end(stack: Stack) -> dict[str, Any]:
    watcher = Watcher()
    await watcher.start(stack.nats_url)
    try:
        t0 = time.perf_counter()
        ids, _, submit_s = await submit_burst(stack.api_url, JOBS, 32, stack.auth_headers)
        await watcher.wait_done(ids, timeout=900)
        e2e_s = max(watcher.done[i] for i in ids) - t0
        batch = await batch_rate(stack, watcher, BATCH_JOBS)
        array = await array_rate(stack, watcher, ARRAY_TASKS)
        idle = await idle_latency(stack, watcher, LATENCY_SAMPLES)
    finally:
        await watcher.nc.close()
    reads = await read_burst(stack.api_url, ids, 32, stack.auth_headers)
    return {
        "end_to_end": {
            "jobs": JOBS,
            "executor_slots": SLOTS,
            "submit_requests_per_s": round(JOBS / submit_s, 1),
            "seconds_first_submit_to_last_finished": round(e2e_s, 2),
            "jobs_completed_per_s": round(JOBS / e2e_s, 1),
            "not_succeeded": sum(watcher.final.get(i) != "succeeded" for i in ids),
            "connections_dropped_and_retried": len(e2e.DROPPED),
        },
        "batch": batch,
        "array": array,
        "latency_idle": idle,
        "reads": {"requests": len(ids), "concurrent_clients": 32, **reads},
    }


def ratios(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Each jobwire figure beside its reference from this run, as a ratio, and the issue's target."""
    rows: list[dict[str, Any]] = []
    bare = {p["connections"]: p for p in doc["bare_route"]}
    for kind, result in doc["databases"].items():
        for p in result.get("curve", []):
            ref = bare.get(p["connections"])
            if ref is None:
                continue
            ratio = p["requests_per_s"] / ref["requests_per_s"] if ref["requests_per_s"] else None
            plural = "s" if p["connections"] != 1 else ""
            row = {
                "figure": f"durable submits/s, {kind}, {p['connections']} connection{plural}",
                "value": p["requests_per_s"],
                "reference": "bare Litestar route, same server settings",
                "reference_value": ref["requests_per_s"],
                "ratio": round(ratio, 3) if ratio is not None else None,
                "p99_ms": p["latency_ms_p99"],
                "errors": p["errors"],
            }
            if p["connections"] == 32:
                row["target"] = (
                    f"ratio >= {TARGETS['submit_ratio']}, p99 < {TARGETS['submit_p99_ms']:.0f} ms, 0 errors"
                )
                row["met"] = bool(
                    ratio is not None
                    and ratio >= TARGETS["submit_ratio"]
                    and p["latency_ms_p99"] < TARGETS["submit_p99_ms"]
                    and p["errors"] == 0
                )
            rows.append(row)
    first = doc["databases"].get(DATABASES[0], {})
    refs = first.get("references", {})
    if "end_to_end" in first:
        js = refs.get("jetstream_publish", {})
        sq = refs.get("sqlite_one_row_per_commit", {})
        e2e = first["end_to_end"]["jobs_completed_per_s"]
        rows.append(
            {
                "figure": "no-op jobs completed/s end to end (local executor)",
                "value": e2e,
                "reference": "SQLite one row per commit (WAL)",
                "reference_value": sq.get("commits_per_s"),
                "ratio": round(e2e / sq["commits_per_s"], 4) if sq.get("commits_per_s") else None,
                "target": f">= {TARGETS['jobs_per_s']:.0f}/s",
                "met": e2e >= TARGETS["jobs_per_s"],
            }
        )
        one = next((p for p in first["curve"] if p["connections"] == 1), None)
        if one and js.get("sequential_per_s"):
            rows.append(
                {
                    "figure": f"durable submits/s, {DATABASES[0]}, 1 connection",
                    "value": one["requests_per_s"],
                    "reference": "JetStream publish with ack, sequential",
                    "reference_value": js["sequential_per_s"],
                    "ratio": round(one["requests_per_s"] / js["sequential_per_s"], 3),
                }
            )
        b = first["batch"]
        for refused in b.get("refused_larger", []):
            rows.append(
                {
                    "figure": f"{refused['jobs']}-job batch in one request",
                    "value": f"refused: {refused['status']} {refused['detail']}",
                    "target": "stored and completed",
                    "met": False,
                }
            )
        rows.append(
            {
                "figure": f"{b['jobs']}-job batch completed/s",
                "value": b["jobs_completed_per_s"],
                "reference": "no-op jobs completed/s (one submit per job)",
                "reference_value": e2e,
                "ratio": round(b["jobs_completed_per_s"] / e2e, 3) if e2e else None,
                "target": f">= {TARGETS['jobs_per_s']:.0f}/s",
                "met": b["jobs_completed_per_s"] >= TARGETS["jobs_per_s"],
            }
        )
        arr = first.get("array")
        if arr:
            per_s, single = arr["tasks_completed_per_s"], b["jobs_completed_per_s"]
            rows.append(
                {
                    "figure": f"{arr['tasks']}-task array completed/s",
                    "value": per_s,
                    "reference": f"{b['jobs']}-job batch completed/s, same run",
                    "reference_value": single,
                    "ratio": round(per_s / single, 3) if single else None,
                    "target": "the same as single jobs or better (issue 14)",
                    "met": per_s >= 0.95 * single,
                }
            )
        p50 = first["latency_idle"]["submit_to_running_ms_p50"]
        rows.append(
            {
                "figure": "submit -> running p50 ms, idle",
                "value": p50,
                "target": f"< {TARGETS['submit_to_running_ms_p50']:.0f} ms",
                "met": p50 < TARGETS["submit_to_running_ms_p50"],
            }
        )
        mem = first.get("memory", {})
        for name in ("gateway", "scheduler"):
            if name in mem:
                rows.append(
                    {
                        "figure": f"{name} RSS growth, {mem['seconds']:.0f} s at half the 32-connection rate",
                        "value": mem[name]["growth"],
                        "target": "within 10%",
                        "met": mem[name]["flat"],
                    }
                )
    hpc = doc.get("slurm", {})
    if "jobs_per_s_ratio" in hpc:
        rows.append(
            {
                "figure": "jobs/s through executor-hpc to SLURM",
                "value": hpc["jobwire_executor_hpc"]["jobs_per_s"],
                "reference": "raw sbatch --wrap=true, same cluster",
                "reference_value": hpc["raw_sbatch"]["jobs_per_s"],
                "ratio": hpc["jobs_per_s_ratio"],
                "target": ">= 0.8",
                "met": hpc["jobs_per_s_ratio"] >= 0.8,
            }
        )
    return rows


def main() -> None:
    started = time.time()
    load_before = os.getloadavg()
    doc: dict[str, Any] = {
        "benchmark": "jobwire: make bench",
        "machine": {
            "cores": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "load_generator": loadgen.tool() + " (1 thread, keep-alive, one request in flight per connection)",
        "settings": {
            "curve_seconds": CURVE_S,
            "connections": CONNECTIONS,
            "executor_slots": SLOTS,
            "executor_cpus_declared": SLOTS,
            "gateway_workers": int(os.environ.get("JOBWIRE_GATEWAY_WORKERS", "1")),
        },
    }
    workers = doc["settings"]["gateway_workers"] or os.cpu_count() or 1
    OUT.mkdir(parents=True, exist_ok=True)
    say("bare route")
    doc["bare_route"] = ceilings.bare_route_curve(workers, CONNECTIONS, CURVE_S, BODY)
    say(f"bare route: {doc['bare_route']}")
    doc["databases"] = {}
    with tempfile.TemporaryDirectory(prefix="jobwire-bench-") as home:
        for i, kind in enumerate(DATABASES):
            doc["databases"][kind] = bench_database(kind, Path(home), first=i == 0)
            (OUT / "bench.partial.json").write_text(json.dumps(doc, indent=2) + "\n")
    if os.environ.get("BENCH_SLURM", "1") != "0":
        say("slurm")
        doc["slurm"] = slurm_bench.measure(SLURM_JOBS, float(os.environ.get("BENCH_SLURM_LOCK_WAIT", "300")))
    if os.environ.get("BENCH_READ", "1") != "0":
        say("reads at scale")
        doc["reads_at_scale"] = read_bench.measure()
    doc["ratios"] = ratios(doc)
    doc["machine"]["load_average_before"] = [round(x, 2) for x in load_before]
    doc["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    doc["seconds"] = round(time.time() - started, 1)
    (OUT / "bench.json").write_text(json.dumps(doc, indent=2) + "\n")
    plot.curve_png(doc, OUT / "bench.png")
    doc["files"] = [str(OUT / "bench.json"), str(OUT / "bench.png")]
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
