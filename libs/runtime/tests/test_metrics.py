"""Which process exports which series (issue 15: each metric on the process that counts it), and the NATS
reconnect counter every process keeps, counted across a real nats-server restart."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from prometheus_client import generate_latest

from jobwire.runtime import metrics
from jobwire.runtime.bus import connect
from jobwire.runtime.settings import BusSettings
from tests.support.private_nats import PrivateNats, free_port
from tests.support.prom import sample

GATEWAY = {"jobwire_submits_total", "jobwire_submitted_jobs_total", "jobwire_submit_duration_seconds"}
SCHEDULER = {
    "jobwire_submit_to_running_seconds",
    "jobwire_scheduler_batch_messages",
    "jobwire_scheduler_batch_duration_seconds",
    "jobwire_scheduler_failed_batches_total",
    "jobwire_scheduler_dispatches_total",
}
EXECUTOR = {
    "jobwire_executor_poll_duration_seconds",
    "jobwire_backend_errors_total",
    "jobwire_log_bytes_total",
    "jobwire_artifact_bytes_total",
}
OWN = {"gateway": GATEWAY, "scheduler": SCHEDULER, "executor": EXECUTOR}


def declared(text: str) -> set[str]:
    """The series an exposition declares (``# TYPE``), creation-time companions left out."""
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    return {n for n in names if not n.endswith("_created")}


@pytest.mark.unit
@pytest.mark.parametrize("role", sorted(OWN))
def test_each_process_exports_its_own_series_and_no_one_elses(role: str) -> None:
    # labelled series appear once counted: count one of each, as the processes would
    metrics.DISPATCHES.labels(node="n").inc(0)
    metrics.BACKEND_ERRORS.labels(backend="slurm", call="start").inc(0)
    metrics.LOG_BYTES.labels(stream="stdout").inc(0)
    metrics.SUBMITS.labels(status="201", kind="job").inc(0)
    metrics.SUBMITTED_JOBS.labels(kind="job").inc(0)
    metrics.NATS_RECONNECTS.labels(client="t").inc(0)
    metrics.POLL_SECONDS.labels(backend="local").observe(0.0)
    metrics.SUBMIT_TO_RUNNING.labels(backend="local").observe(0.0)
    names = declared(generate_latest(metrics.registry(role)).decode())
    jobwire = {n for n in names if n.startswith("jobwire_")}
    assert jobwire == OWN[role] | {"jobwire_nats_reconnects_total"}
    assert "process_cpu_seconds_total" in names and "python_info" in names


@pytest.mark.unit
def test_service_names_map_to_their_roles() -> None:
    assert metrics.role_of("scheduler") == "scheduler"
    assert metrics.role_of("jobwire-executor") == "executor"
    assert metrics.role_of("jobwire-executor-ssh") == "executor"
    with pytest.raises(ValueError, match="unknown metrics role"):
        metrics.registry("nobody")


@pytest.mark.unit
def test_the_metrics_port_serves_the_roles_series_only() -> None:
    port = metrics.serve_metrics(
        {metrics.PORT_ENV: str(free_port()), metrics.ADDR_ENV: "127.0.0.1"}, role="scheduler"
    )
    assert port is not None
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert "jobwire_scheduler_failed_batches_total" in text
    assert "jobwire_submit_duration_seconds" not in text and "jobwire_log_bytes" not in text


@pytest.mark.integration
async def test_a_nats_restart_is_counted_as_a_reconnect(tmp_path) -> None:
    nats = PrivateNats(tmp_path / "nats")
    nats.start()
    client = f"reconnect-{uuid.uuid4().hex[:8]}"
    bus = await connect(BusSettings(nats_url=nats.url), name=client)
    try:

        def count() -> float:
            text = generate_latest(metrics.registry("executor")).decode()
            return sample(text, "jobwire_nats_reconnects_total", client=client) or 0.0

        assert count() == 0
        nats.stop()
        await asyncio.sleep(1.0)
        nats.start()
        deadline = time.monotonic() + 60  # nats-py waits up to 2 s between tries; generous for CI
        while count() < 1:
            assert time.monotonic() < deadline, "no reconnect counted after NATS came back"
            await asyncio.sleep(0.2)
        assert count() == 1
        await bus.nc.flush(timeout=10)  # and the connection works again
    finally:
        await bus.close()
        nats.stop()
