"""The ``ratios`` list of ``make bench``'s document: each jobwire figure beside its reference measured in the
same run, as a ratio, and issue 11's target. A part that failed or did not run gives no row; every row is
built on its own, so one odd part cannot take the others' rows with it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

#: the issue's targets (issue 11), each beside the reference it is a share of
TARGETS = {"submit_ratio": 0.7, "submit_p99_ms": 50.0, "jobs_per_s": 500.0, "submit_to_running_ms_p50": 50.0}
HPC_RATIO = 0.8


def ok(where: Any, key: str) -> dict[str, Any] | None:
    """``where[key]`` when that part ran and did not fail."""
    value = where.get(key) if isinstance(where, dict) else None
    if not isinstance(value, dict) or "failed" in value or "skipped" in value:
        return None
    return value


def _curve_rows(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    bare = {p["connections"]: p for p in doc.get("bare_route") or [] if isinstance(p, dict)}
    for kind, result in (doc.get("databases") or {}).items():
        curve = result.get("curve") if isinstance(result, dict) else None
        for p in curve if isinstance(curve, list) else []:
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
            yield row


def _floor_rows(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Each database's floor beside the bare route (what the design allows at all), and each jobwire
    point beside its database's floor (how near the code is to that)."""
    bare = {p["connections"]: p for p in doc.get("bare_route") or [] if isinstance(p, dict)}
    for kind, result in (doc.get("databases") or {}).items():
        if not isinstance(result, dict) or not isinstance(result.get("durable_floor"), list):
            continue
        floor = {p["connections"]: p for p in result["durable_floor"] if isinstance(p, dict)}
        for c, f in floor.items():
            ref = bare.get(c)
            if ref and ref["requests_per_s"]:
                yield {
                    "figure": f"durable-submit floor/s, {kind}, {c} connection{'s' if c != 1 else ''}",
                    "value": f["requests_per_s"],
                    "reference": "bare Litestar route, same server settings",
                    "reference_value": ref["requests_per_s"],
                    "ratio": round(f["requests_per_s"] / ref["requests_per_s"], 3),
                    "p99_ms": f["latency_ms_p99"],
                    "errors": f["errors"],
                    "note": "the least a durable submit of this design costs: the most any jobwire can reach",
                }
        curve = result.get("curve")
        for p in curve if isinstance(curve, list) else []:
            ref = floor.get(p["connections"])
            if ref and ref["requests_per_s"]:
                yield {
                    "figure": f"durable submits/s beside the floor, {kind}, {p['connections']} connection"
                    + ("s" if p["connections"] != 1 else ""),
                    "value": p["requests_per_s"],
                    "reference": "the durable-submit floor on the same database (benchmarks.durable_floor)",
                    "reference_value": ref["requests_per_s"],
                    "ratio": round(p["requests_per_s"] / ref["requests_per_s"], 3),
                }


def _first(doc: dict[str, Any]) -> dict[str, Any]:
    dbs = doc.get("databases") or {}
    first = dbs.get(doc.get("settings", {}).get("databases", ["sqlite"])[0]) or {}
    return first if isinstance(first, dict) else {}


def _e2e_rows(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    first = _first(doc)
    e2e_part = ok(first, "end_to_end")
    e2e = e2e_part["jobs_completed_per_s"] if e2e_part else None
    if e2e is not None:
        sq = ok(ok(first, "references") or {}, "sqlite_one_row_per_commit") or {}
        yield {
            "figure": "no-op jobs completed/s end to end (local executor)",
            "value": e2e,
            "reference": "SQLite one row per commit (WAL)",
            "reference_value": sq.get("commits_per_s"),
            "ratio": round(e2e / sq["commits_per_s"], 4) if sq.get("commits_per_s") else None,
            "target": f">= {TARGETS['jobs_per_s']:.0f}/s",
            "met": e2e >= TARGETS["jobs_per_s"],
        }
    refs = ok(first, "references") or {}
    wrapped, bare = ok(refs, "wrapped_noop_jobs") or {}, ok(refs, "bare_processes") or {}
    if e2e is not None and wrapped.get("jobs_per_s"):
        yield {
            "figure": "no-op jobs completed/s end to end (local executor)",
            "value": e2e,
            "reference": (
                f"the same no-op jobs, each only the attempt wrapper, {wrapped['parallel']} at once, nothing"
                f" else ({wrapped['cpu_ms_per_job']} ms CPU a job; /bin/true alone:"
                f" {bare.get('jobs_per_s')}/s)"
            ),
            "reference_value": wrapped["jobs_per_s"],
            "ratio": round(e2e / wrapped["jobs_per_s"], 3),
        }
    js = ok(refs, "jetstream_publish") or {}
    curve: list[dict[str, Any]] = first["curve"] if isinstance(first.get("curve"), list) else []
    one = next((p for p in curve if p["connections"] == 1), None)
    if one and js.get("sequential_per_s"):
        yield {
            "figure": "durable submits/s, first database, 1 connection",
            "value": one["requests_per_s"],
            "reference": "JetStream publish with ack, sequential",
            "reference_value": js["sequential_per_s"],
            "ratio": round(one["requests_per_s"] / js["sequential_per_s"], 3),
        }
    b = ok(first, "batch")
    if b:
        for refused in b.get("refused_larger", []):
            yield {
                "figure": f"{refused['jobs']}-job batch in one request",
                "value": f"refused: {refused['status']} {refused['detail']}",
                "target": "stored and completed",
                "met": False,
            }
        yield {
            "figure": f"{b['jobs']}-job batch completed/s",
            "value": b["jobs_completed_per_s"],
            "reference": "no-op jobs completed/s (one submit per job)",
            "reference_value": e2e,
            "ratio": round(b["jobs_completed_per_s"] / e2e, 3) if e2e else None,
            "target": f">= {TARGETS['jobs_per_s']:.0f}/s",
            "met": b["jobs_completed_per_s"] >= TARGETS["jobs_per_s"],
        }
    arr = ok(first, "array")
    if arr:
        single = b["jobs_completed_per_s"] if b else None
        yield {
            "figure": f"{arr['tasks']}-task array completed/s",
            "value": arr["tasks_completed_per_s"],
            "reference": "the batch's jobs completed/s, same run",
            "reference_value": single,
            "ratio": round(arr["tasks_completed_per_s"] / single, 3) if single else None,
            "target": "the same as single jobs or better (issue 14)",
            "met": bool(single and arr["tasks_completed_per_s"] >= 0.95 * single),
        }
    idle = ok(first, "latency_idle")
    if idle:
        p50 = idle["submit_to_running_ms_p50"]
        yield {
            "figure": "submit -> running p50 ms, idle",
            "value": p50,
            "target": f"< {TARGETS['submit_to_running_ms_p50']:.0f} ms",
            "met": p50 < TARGETS["submit_to_running_ms_p50"],
        }


def _memory_rows(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    mem = ok(_first(doc), "memory")
    if mem:
        for name in ("gateway", "scheduler"):
            if name in mem:
                yield {
                    "figure": (
                        f"{name} RSS drift after a {mem['warmup_s']:.0f} s warm-up, {mem['seconds']:.0f} s "
                        f"at {mem['load']['offered_per_s']}/s"
                    ),
                    "value": mem[name]["worst_drift"],
                    "mib": [mem[name]["mib_after_warmup"], mem[name]["mib_last"]],
                    "target": "within 10%",
                    "met": mem[name]["flat"],
                }
    scale = ok(doc, "scale_memory")
    if scale:
        stored = scale["ended_database"]["jobs_stored"]
        yield {
            "figure": f"scheduler RSS, {stored:,} stored jobs (none active) vs an empty database",
            "value": scale["ended_database"]["rss_mib"],
            "reference": "the same on an empty database",
            "reference_value": scale["empty_database"]["rss_mib"],
            "ratio": round(1 + scale["stored_jobs"]["growth"], 3),
            "target": "within 10%",
            "met": scale["stored_jobs"]["flat"],
            "bytes_per_active_job": scale["active_jobs"]["bytes_per_active_job"],
            "jobs_active": scale["active_jobs"]["jobs_active"],
        }


def _hpc_rows(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key, raw_name in (("slurm", "raw sbatch"), ("sge", "raw qsub")):
        hpc = ok(doc, key)
        if hpc and "jobs_per_s_ratio" in hpc:
            yield {
                "figure": f"jobs/s through executor-hpc to {key.upper()}",
                "value": hpc["jobwire_executor_hpc"]["jobs_per_s"],
                "reference": f"{raw_name}, same jobs, same cluster",
                "reference_value": hpc["raw"]["jobs_per_s"],
                "ratio": hpc["jobs_per_s_ratio"],
                "target": f">= {HPC_RATIO}",
                "met": hpc["jobs_per_s_ratio"] >= HPC_RATIO,
            }


def _reads_rows(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    reads = ok(doc, "reads_at_scale") or {}
    jobs = (ok(reads, "data") or {}).get("jobs", 0)
    for kind in ("sqlite", "postgresql"):
        r = ok(reads, kind)
        if r and "http_worst_p99_ms" in r:
            yield {
                "figure": f"{jobs:,} stored jobs, {kind}: worst HTTP p99 (filters, cursors, counts, one job)",
                "value": r["http_worst_p99_ms"],
                "target": "< 20 ms",
                "met": r["http_all_under_target"],
            }


def ratios(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every row that the parts that ran can give; a row group that raises is named in its place."""
    rows: list[dict[str, Any]] = []
    groups: list[Callable[[dict[str, Any]], Iterator[dict[str, Any]]]] = [
        _curve_rows,
        _floor_rows,
        _e2e_rows,
        _memory_rows,
        _hpc_rows,
        _reads_rows,
    ]
    for group in groups:
        try:
            rows.extend(group(doc))
        except Exception as e:  # a shape this code did not expect: say so, keep the other rows
            rows.append({"figure": group.__name__, "failed": f"{type(e).__name__}: {e}"})
    return rows
