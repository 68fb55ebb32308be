"""``GET /metrics`` on the gateway: never anonymous (scope ``metrics:read``), the fleet from the database at
scrape time, and every submission counted and timed by the status it got. The scheduler's and executors'
own ports are scraped after a real job in tests/e2e/test_metrics_e2e.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobwire.contracts import v1
from tests.support.nodes import store_node
from tests.support.prom import sample

pytestmark = pytest.mark.integration


async def add_node(  # type: ignore[no-untyped-def]
    sessions,
    name: str,
    backend: str,
    capacity: v1.NodeCapacity,
    *,
    gpus: list[v1.GpuInfo] | None = None,
    at: datetime | None = None,
) -> None:
    """A node row as the scheduler keeps it (up, heart-beating at ``at``): what the gateway reads."""
    await store_node(sessions, name, backend, capacity, gpus=gpus, at=at)


async def test_metrics_need_the_metrics_scope(gateway, mint) -> None:
    assert (await gateway.get("/metrics", headers={"Authorization": ""})).status_code == 401
    user = await mint("alice")
    r = await gateway.get("/metrics", headers={"Authorization": f"Bearer {user}"})
    assert r.status_code == 403
    assert "metrics:read" in r.json()["detail"]
    ops = await mint("prometheus", scopes=["metrics:read"])
    r = await gateway.get("/metrics", headers={"Authorization": f"Bearer {ops}"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    # the operator's token reads metrics and nothing else
    assert (await gateway.get("/v1/jobs", headers={"Authorization": f"Bearer {ops}"})).status_code == 403


async def test_jobs_by_state_and_backend_and_submits_counted(gateway, seed, sessions) -> None:
    await add_node(sessions, "cluster-a", "slurm", v1.NodeCapacity(slots=4, gpus=2))
    for _ in range(3):
        await seed.job(state="succeeded", node="cluster-a")
    await seed.job(state="queued")
    before = (await gateway.get("/metrics")).text
    count_before = sample(before, "jobwire_submit_duration_seconds_count") or 0
    accepted_before = sample(before, "jobwire_submits_total", status="202") or 0
    refused_before = sample(before, "jobwire_submits_total", status="422") or 0

    assert (await gateway.post("/v1/jobs", json={"command": ["true"]})).status_code == 202  # no scheduler
    assert (await gateway.post("/v1/jobs", json={"command": []})).status_code == 422

    text = (await gateway.get("/metrics")).text
    assert sample(text, "jobwire_jobs", state="succeeded", backend="slurm") == 3
    assert sample(text, "jobwire_jobs", state="queued", backend="") == 1
    assert sample(text, "jobwire_jobs", state="running") == 0  # every state is present
    assert sample(text, "jobwire_node_up", node="cluster-a", backend="slurm") == 1
    assert sample(text, "jobwire_node_gpus", node="cluster-a") == 2
    assert sample(text, "jobwire_submits_total", status="202") == accepted_before + 1
    assert sample(text, "jobwire_submits_total", status="422") == refused_before + 1
    assert sample(text, "jobwire_submit_duration_seconds_count") == count_before + 2


async def test_batches_arrays_and_workflows_are_counted_by_kind_and_jobs(gateway) -> None:
    """An operator graphs how many submissions of each kind came in and how many jobs they asked for:
    one batch of 3 is one batch submit and 3 jobs; an array of 7 is one array submit and 7 jobs."""
    before = (await gateway.get("/metrics")).text

    def grew(text: str, name: str, **labels: str) -> float:
        return (sample(text, name, **labels) or 0) - (sample(before, name, **labels) or 0)

    spec = {"command": ["true"]}
    assert (await gateway.post("/v1/jobs", json=spec)).status_code == 202  # no scheduler: queued
    r = await gateway.post("/v1/jobs", json={**spec, "array": {"count": 7}})
    assert r.status_code == 202 and r.headers["location"].startswith("/v1/arrays/")
    assert (await gateway.post("/v1/jobs:batch", json={"jobs": [spec] * 3})).status_code == 202
    flow = {"name": "m", "jobs": [{**spec, "name": "a"}, {**spec, "name": "b", "after": [{"job": "a"}]}]}
    assert (await gateway.post("/v1/workflows", json=flow)).status_code == 202
    assert (await gateway.post("/v1/jobs:batch", json={"jobs": [{"command": []}]})).status_code == 422

    text = (await gateway.get("/metrics")).text
    assert grew(text, "jobwire_submits_total", status="202", kind="job") == 1
    assert grew(text, "jobwire_submits_total", status="202", kind="array") == 1
    assert grew(text, "jobwire_submits_total", status="202", kind="batch") == 1
    assert grew(text, "jobwire_submits_total", status="202", kind="workflow") == 1
    assert grew(text, "jobwire_submits_total", status="422", kind="batch") == 1
    assert grew(text, "jobwire_submitted_jobs_total", kind="job") == 1
    assert grew(text, "jobwire_submitted_jobs_total", kind="array") == 7
    assert grew(text, "jobwire_submitted_jobs_total", kind="batch") == 3
    assert grew(text, "jobwire_submitted_jobs_total", kind="workflow") == 2
    assert grew(text, "jobwire_submit_duration_seconds_count") == 5


async def test_queue_depth_queued_time_gpus_in_use_and_heartbeat_per_node(gateway, seed, sessions) -> None:
    """The per-node gauges an operator graphs (issue 15): queue depth, queued time (what placement
    minimises: expected runtime queued over the node's slots), GPUs a job holds, the last heartbeat."""
    beat = datetime.now(UTC)
    holder = await seed.job(state="running", node="gpu-box", expected_runtime=0.0)
    gpus = [v1.GpuInfo(index=0, job_id=holder), v1.GpuInfo(index=1)]
    await add_node(sessions, "gpu-box", "ssh", v1.NodeCapacity(slots=2, gpus=2), gpus=gpus, at=beat)
    await seed.job(state="queued", node="gpu-box", expected_runtime=300.0)
    await seed.job(state="queued", node="gpu-box", expected_runtime=100.0)

    text = (await gateway.get("/metrics")).text
    assert sample(text, "jobwire_node_queued_jobs", node="gpu-box") == 2
    assert sample(text, "jobwire_node_queued_seconds", node="gpu-box") == 200.0  # (300 + 100) / 2 slots
    assert sample(text, "jobwire_node_running_jobs", node="gpu-box") == 1
    assert sample(text, "jobwire_node_gpus", node="gpu-box") == 2
    assert sample(text, "jobwire_node_gpus_used", node="gpu-box") == 1
    assert sample(text, "jobwire_node_last_heartbeat_timestamp_seconds", node="gpu-box") == beat.timestamp()
    assert sample(text, "jobwire_jobs", state="queued", backend="ssh") == 2
