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
