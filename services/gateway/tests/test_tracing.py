"""Tracing is there when asked for and costs nothing when not (issue 11).

With tracing on, a submit is a server span whose trace id the command carries to the scheduler in its
``traceparent`` header; with it off, the gateway makes no span at all (not even to drop it) and the command
carries no trace context. A span processor that records everything is installed on the process's tracer
provider in both cases, so "no span" means none was made, not that none was exported.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime import telemetry

pytestmark = pytest.mark.integration

JOB = {"command": ["true"], "expected_runtime": 1}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    telemetry.setup_tracing("gateway-test", processor=SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # later spans of other tests are not kept


def _gateway_spans(exporter: InMemorySpanExporter) -> list[str]:
    return [s.name for s in exporter.get_finished_spans() if s.name.startswith(("POST", "GET"))]


async def test_with_tracing_on_a_submit_is_a_span_the_command_continues(serve_gateway, seed, spans):
    async with serve_gateway(tracing=True) as client:
        r = await client.post("/v1/jobs", json=JOB)
        assert r.status_code == 202, r.text
        assert (await client.get("/v1/jobs/counts")).status_code == 200
    [msg] = await seed.commands()
    assert msg.subject == sj.cmd_subject("submit")
    trace_id = msg.headers["traceparent"].split("-")[1]
    server = [s for s in spans.get_finished_spans() if s.name.startswith("POST /v1/jobs")]
    assert server, [s.name for s in spans.get_finished_spans()]
    assert {format(s.context.trace_id, "032x") for s in server} == {trace_id}
    assert any(name.startswith("GET /v1/jobs/counts") for name in _gateway_spans(spans))


async def test_with_tracing_off_no_span_is_made_and_no_context_sent(serve_gateway, seed, spans):
    async with serve_gateway(tracing=False) as client:
        r = await client.post("/v1/jobs", json=JOB)
        assert r.status_code == 202, r.text
        assert (await client.get("/v1/jobs/counts")).status_code == 200
    [msg] = await seed.commands()
    assert msg.subject == sj.cmd_subject("submit")
    assert "traceparent" not in (msg.headers or {})
    assert spans.get_finished_spans() == ()
