"""One submitted job is one trace: spans from gateway, scheduler and executor share its trace id.

The three services run in this process (the in-memory exporter must see all their spans); the trace
context crosses between them only through NATS message headers, exactly as between processes.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from jobwire.execution import ExecutorService, ExecutorSettings
from jobwire.gateway.server import serve
from jobwire.gateway.settings import GatewaySettings
from jobwire.runtime import telemetry
from jobwire.runtime.settings import BusSettings
from jobwire.scheduler.service import Scheduler
from jobwire.scheduler.settings import SchedulerSettings

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


async def test_one_submit_is_one_trace_across_services(clean_bus, nats_url, tmp_path):
    exporter = InMemorySpanExporter()
    telemetry.setup_tracing("jobwire-test", processor=SimpleSpanProcessor(exporter))
    db = f"sqlite+aiosqlite:///{tmp_path}/trace.db"
    bus = BusSettings(nats_url=nats_url)
    scheduler = Scheduler(SchedulerSettings(database_url=db, tick=0.1), bus)
    await scheduler.start()
    executor = ExecutorSettings(
        node="trace-n", root=str(tmp_path / "ex"), tick_interval=0.1, heartbeat_interval=0.3
    )
    try:
        async with (
            ExecutorService(executor, bus_settings=bus),
            serve(GatewaySettings(database_url=db, bus=bus, auth="off"), port=0) as url,  # loopback
            httpx.AsyncClient(base_url=url, timeout=30) as api,
        ):
            for _ in range(100):
                if (await api.get("/v1/nodes")).json()["items"]:
                    break
                await asyncio.sleep(0.1)
            r = await api.post("/v1/jobs", json={"command": ["true"], "expected_runtime": 5})
            assert r.status_code == 201
            job_id = r.json()["id"]
            for _ in range(200):
                if (await api.get(f"/v1/jobs/{job_id}")).json()["state"] == "succeeded":
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the job did not succeed")
            await asyncio.sleep(0.3)  # let the last spans end
    finally:
        await scheduler.stop()

    spans = exporter.get_finished_spans()
    submit = next(s for s in spans if s.name == "scheduler.submit" and s.attributes.get("job_id") == job_id)
    trace = [s for s in spans if s.context.trace_id == submit.context.trace_id]
    names = {s.name for s in trace}
    assert {"scheduler.submit", "scheduler.dispatch", "executor.run"} <= names
    http = [s for s in trace if s.parent is None]
    assert len(http) == 1 and "POST" in http[0].name  # the gateway's request span is the root
    assert all(s.attributes.get("job_id") in (None, job_id) for s in trace)
