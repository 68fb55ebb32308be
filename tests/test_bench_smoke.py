"""``make bench`` with tiny numbers, so its code cannot rot between the runs that produce the README's
figures (the real run is minutes long and stays out of ``make test``)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import ceilings, loadgen

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_make_bench_tiny_run_writes_figures_ratios_and_plot(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "BENCH_CONNECTIONS": "1,32",
        "BENCH_CURVE_S": "1",
        "BENCH_JOBS": "20",
        "BENCH_BATCH_JOBS": "40",
        "BENCH_ARRAY_TASKS": "40",
        "BENCH_SOAK_S": "4",
        "BENCH_SOAK_SAMPLE_S": "1",
        "BENCH_SOAK_WARMUP_S": "1",
        "BENCH_LATENCY_SAMPLES": "3",
        # a database the bench does not know: its part fails, is recorded, and the run goes on
        "BENCH_DATABASES": "sqlite,nosuchdb",
        "BENCH_SLURM": "0",
        "BENCH_READ_JOBS": "2000",
        "BENCH_READ_DATABASES": "sqlite",
        "BENCH_READ_SAMPLES": "2",
        "BENCH_SCALE_SUBMITS": "10",
        "BENCH_SCALE_SETTLE_S": "2",
        "BENCH_DRAIN_S": "60",
        "BENCH_OUT": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.stack_bench"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=560,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = json.loads(done.stdout)
    doc = json.loads((tmp_path / "bench.json").read_text())
    assert printed["databases"] == doc["databases"]
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    floors = doc["databases"]["sqlite"]["durable_floor"]
    for points in (doc["bare_route"], floors, doc["databases"]["sqlite"]["curve"]):
        assert [p["connections"] for p in points] == [1, 32]
        for p in points:
            assert p["requests"] > 0 and p["requests_per_s"] > 0, p
            assert p["errors"] == 0, p
            assert 0 < p["latency_ms_p50"] <= p["latency_ms_p99"], p
    sqlite = doc["databases"]["sqlite"]
    assert sqlite["end_to_end"]["not_succeeded"] == 0
    assert sqlite["batch"]["status"] == 201 and sqlite["batch"]["not_succeeded"] == 0
    assert sqlite["array"]["status"] == 201 and sqlite["array"]["not_succeeded"] == 0
    assert any(r["figure"] == "40-task array completed/s" for r in doc["ratios"])
    assert sqlite["latency_idle"]["submit_to_running_ms_p50"] > 0
    assert sqlite["references"]["jetstream_publish"]["pipelined_per_s"] > 0
    assert sqlite["references"]["sqlite_one_row_per_commit"]["commits_per_s"] > 0
    # the end-to-end figure's ceiling: the same jobs as only their wrapper, and as bare processes
    for key in ("wrapped_noop_jobs", "bare_processes"):
        bare = sqlite["references"][key]
        assert bare["jobs"] == 20 and bare["nonzero_exits"] == 0 and bare["jobs_per_s"] > 0, bare
        assert bare["cpu_ms_per_job"] > 0, bare
    e2e_rows = [r for r in doc["ratios"] if r["figure"].startswith("no-op jobs completed/s end to end")]
    wrapped = sqlite["references"]["wrapped_noop_jobs"]["jobs_per_s"]
    assert any(r["reference_value"] == wrapped for r in e2e_rows), e2e_rows
    for service in ("gateway", "scheduler", "executor-bench", "nats"):
        mem = sqlite["memory"][service]
        assert mem["samples"] >= 3 and len(mem["series_s_mib"]) == mem["samples"], mem
        assert mem["mib_after_warmup"] > 10 and isinstance(mem["flat"], bool), mem
    assert sqlite["memory"]["load"]["offered_per_s"] > 0 and sqlite["memory"]["load"]["errors"] == 0
    # the run went on past the part that failed, and says which one and why
    assert doc["failed_parts"] == ["nosuchdb: start"]
    assert "unknown database 'nosuchdb'" in doc["databases"]["nosuchdb"]["stack"]["failed"]
    reads = doc["reads_at_scale"]
    assert reads["data"]["jobs"] == 2000 and reads["sqlite"]["counts_table_exact_after_seeding"]
    # each figure says how many samples its percentiles are of, and what a request cost the gateway
    page = reads["sqlite"]["figures"]["newest_page"]
    assert page["http"]["samples"] == page["store"]["samples"] == 2, page
    assert page["http"]["gateway_cpu_ms_per_request"] >= 0
    assert reads["data"]["warmup_requests_per_figure"] == 5
    scale = doc["scale_memory"]
    assert scale["seeded_database"]["jobs_stored"] == 2010 and scale["empty_database"]["jobs_stored"] == 10
    assert scale["seeded_database"]["submits"] == {"201": 10} and scale["empty_database"]["rss_mib"] > 10
    # stored jobs and active jobs apart: the copy with every job ended holds only the 10 submitted
    assert scale["ended_database"]["jobs_stored"] == 2010 and scale["ended_database"]["jobs_active"] == 10
    assert scale["active_jobs"]["jobs_active"] == scale["seeded_database"]["jobs_active"] - 10 > 0
    assert isinstance(scale["stored_jobs"]["flat"], bool)
    figure = "scheduler RSS, 2,010 stored jobs (none active) vs an empty database"
    assert any(r["figure"] == figure for r in doc["ratios"])
    target = next(r for r in doc["ratios"] if r["figure"] == "durable submits/s, sqlite, 32 connections")
    assert target["reference_value"] == doc["bare_route"][1]["requests_per_s"]
    assert target["ratio"] == pytest.approx(target["value"] / target["reference_value"], abs=0.001)
    assert isinstance(target["met"], bool)
    # the floor: beside the bare route, and each jobwire point beside it
    floor = next(r for r in doc["ratios"] if r["figure"] == "durable-submit floor/s, sqlite, 32 connections")
    assert floor["value"] == floors[1]["requests_per_s"]
    assert floor["reference_value"] == doc["bare_route"][1]["requests_per_s"]
    beside = "durable submits/s beside the floor, sqlite, 32 connections"
    near = next(r for r in doc["ratios"] if r["figure"] == beside)
    assert near["reference_value"] == floor["value"] and near["value"] == target["value"]


@pytest.mark.integration
def test_fallback_load_generator_counts_answers_and_errors() -> None:
    """The asyncio client used where wrk is missing: 2xx answers are requests, anything else errors."""
    with ceilings.bare_route(1) as url:
        ok = asyncio.run(loadgen._python(loadgen.Load(url, "/v1/jobs", b'{"command":["true"]}', {}), 4, 1))
        missing = asyncio.run(loadgen._python(loadgen.Load(url, "/nowhere", b"{}", {}), 2, 0.5))
    assert ok["requests"] > 50 and ok["errors"] == 0
    assert ok["latency_ms_p50"] <= ok["latency_ms_p99"]
    assert missing["requests"] > 0 and missing["errors"] == missing["requests"]
