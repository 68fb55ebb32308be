"""Dependencies and workflows under load: how fast a DAG completes beside the same jobs with no edges.

- ``fan``: one workflow of ``jobs`` no-op jobs, a root, ``jobs - 2`` jobs after it and a last job after all
  of those (one batch of ended jobs releases hundreds of dependents; the last waits on hundreds);
- the same number of independent no-op jobs in one ``POST /v1/jobs:batch``, the reference;
- ``chain``: ``chain`` jobs each after the one before, for the cost of one dependency hop (a job's end
  to its dependent's start, through executor report, scheduler batch and dispatch).

``dag_rates(stack, watcher)`` is what ``make bench`` can call; run alone, it starts its own stack:

    uv run python -m benchmarks.dag_bench       # BENCH_DAG_JOBS=1000 BENCH_DAG_CHAIN=50 BENCH_SLOTS=16
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.e2e import NOOP, Watcher, batch_rate
from jobwire.stack.processes import free_port
from jobwire.stack.stack import ExecutorConfig, Stack, StackConfig

DAG_JOBS = int(os.environ.get("BENCH_DAG_JOBS", "1000"))
CHAIN = int(os.environ.get("BENCH_DAG_CHAIN", "50"))
SLOTS = int(os.environ.get("BENCH_SLOTS", "16"))


def fan(jobs: int) -> dict[str, Any]:
    """root -> ``jobs - 2`` middle jobs -> sink."""
    middle = [f"m{i}" for i in range(jobs - 2)]
    specs = [{**NOOP, "name": "root"}]
    specs += [{**NOOP, "name": m, "after": [{"job": "root"}]} for m in middle]
    specs.append({**NOOP, "name": "sink", "after": [{"job": m} for m in middle]})
    return {"name": "fan", "jobs": specs}


def chain(length: int) -> dict[str, Any]:
    specs = [{**NOOP, "name": "j0"}]
    specs += [{**NOOP, "name": f"j{i}", "after": [{"job": f"j{i - 1}"}]} for i in range(1, length)]
    return {"name": "chain", "jobs": specs}


async def workflow_rate(stack: Stack, watcher: Watcher, body: dict[str, Any]) -> dict[str, Any]:
    """Submit one workflow, then the time until its last job finished."""
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=300, headers=stack.auth_headers) as c:
        t0 = time.perf_counter()
        r = await c.post("/v1/workflows", json=body)
        answered = time.perf_counter() - t0
        r.raise_for_status()
    ids = list(r.json()["jobs"].values())
    await watcher.wait_done(ids, timeout=max(600, len(ids) / 2))
    elapsed = max(watcher.done[i] for i in ids) - t0
    return {
        "jobs": len(ids),
        "status": r.status_code,
        "request_s": round(answered, 3),
        "seconds_to_last_finished": round(elapsed, 2),
        "jobs_completed_per_s": round(len(ids) / elapsed, 1),
        "not_succeeded": sum(watcher.final.get(i) != "succeeded" for i in ids),
    }


async def dag_rates(
    stack: Stack, watcher: Watcher, jobs: int = DAG_JOBS, length: int = CHAIN
) -> dict[str, Any]:
    independent = await batch_rate(stack, watcher, jobs)
    fanned = await workflow_rate(stack, watcher, fan(jobs))
    chained = await workflow_rate(stack, watcher, chain(length))
    return {
        "independent_batch": independent,
        "fan_workflow": fanned,
        "fan_vs_independent": round(fanned["jobs_completed_per_s"] / independent["jobs_completed_per_s"], 2),
        "chain_workflow": chained,
        "chain_seconds_per_hop": round(chained["seconds_to_last_finished"] / length, 3),
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="jobwire-dag-bench-") as home:
        stack = Stack(
            StackConfig(
                home=Path(home),
                api_port=free_port(),
                nats_port=free_port(),
                nats_monitor_port=free_port(),
                executors=[ExecutorConfig(node="bench", slots=SLOTS)],
                env={"JOBWIRE_LOG_LEVEL": "WARNING", "JOBWIRE_EXECUTOR_TICK_INTERVAL": "0.05"},
            )
        )
        stack.start()
        try:

            async def run() -> dict[str, Any]:
                watcher = Watcher()
                await watcher.start(stack.nats_url)
                try:
                    return await dag_rates(stack, watcher)
                finally:
                    await watcher.nc.close()

            doc = {"slots": SLOTS, "load": os.getloadavg(), **asyncio.run(run())}
        finally:
            stack.stop()
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
