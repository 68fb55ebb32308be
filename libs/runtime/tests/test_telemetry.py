"""When a service traces: spans that go nowhere are not made (they cost a third of a submit's gateway CPU)."""

from __future__ import annotations

import pytest

from jobwire.runtime import telemetry

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("setting", "exporter", "configured", "expected"),
    [
        (None, None, False, False),  # nothing exports: no spans
        (None, "none", False, False),
        (None, "otlp", False, True),
        (None, "none, console", False, True),
        (None, None, True, True),  # a provider set up in this process (tests' in-memory exporter)
        (True, None, False, True),  # said explicitly, either way
        (False, "otlp", True, False),
    ],
)
def test_tracing_is_wanted_when_spans_go_somewhere(monkeypatch, setting, exporter, configured, expected):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    if exporter is None:
        monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    else:
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", exporter)
    monkeypatch.setattr(telemetry, "_configured", configured)
    assert telemetry.wanted(setting) is expected


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
def test_an_otlp_endpoint_alone_turns_tracing_on_unless_the_exporter_says_none(monkeypatch, variable):
    """As the OpenTelemetry SDK reads it: OTEL_TRACES_EXPORTER defaults to otlp, here where an endpoint is
    given (spans then have somewhere to go); an explicit ``none`` still wins."""
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.setattr(telemetry, "_configured", False)
    monkeypatch.setenv(variable, "http://collector:4318")
    assert telemetry.wanted(None) is True
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert telemetry.wanted(None) is False


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def no_provider(monkeypatch):
    """A process where no tracer provider is installed (the default deployment: nothing exports)."""
    from opentelemetry import trace

    monkeypatch.setattr(trace, "get_tracer_provider", trace.ProxyTracerProvider)


def test_with_no_provider_and_no_trace_context_a_span_is_the_no_op_one_and_nothing_is_passed_on(no_provider):
    from opentelemetry import trace

    with telemetry.span_from({"Nats-Msg-Id": "j1"}, "t", "scheduler.submit", job_id="j1") as span:
        assert span is trace.INVALID_SPAN
        assert not span.is_recording()
        assert telemetry.inject({"a": "b"}) == {"a": "b"}
    assert telemetry.inject() == {}


def test_a_trace_context_that_arrives_is_passed_on_where_no_provider_is_installed(no_provider):
    with telemetry.span_from({"traceparent": TRACEPARENT}, "t", "scheduler.submit"):
        out = telemetry.inject({"a": "b"})
    assert out["a"] == "b"
    assert out["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
