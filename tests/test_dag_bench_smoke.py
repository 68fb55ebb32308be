"""``benchmarks.dag_bench`` with tiny numbers, so the DAG figures' code cannot rot between real runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_dag_bench_tiny_run_completes_every_job_of_each_shape() -> None:
    env = {**os.environ, "BENCH_DAG_JOBS": "12", "BENCH_DAG_CHAIN": "4", "BENCH_SLOTS": "4"}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.dag_bench"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)
    for shape, jobs in (("independent_batch", 12), ("fan_workflow", 12), ("chain_workflow", 4)):
        assert doc[shape]["jobs"] == jobs and doc[shape]["not_succeeded"] == 0, doc[shape]
        assert doc[shape]["jobs_completed_per_s"] > 0
    assert doc["fan_vs_independent"] > 0 and doc["chain_seconds_per_hop"] > 0
