"""Metrics after a real job: the scheduler's and the executor's own ``JOBWIRE_METRICS_PORT`` (no token), and
the gateway's ``/metrics`` (scope ``metrics:read``), scraped over HTTP from the stack's processes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from jobwire.stack.processes import free_port
from jobwire.stack.stack import ExecutorConfig, Stack
from tests.e2e.conftest import make_stack, submit, wait_for, wait_state
from tests.support.prom import sample

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

OUTPUT = "x" * 5000


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {"scheduler": free_port(), "executor": free_port()}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, ports: dict[str, int]) -> Iterator[Stack]:
    s = make_stack(
        tmp_path_factory.mktemp("metrics-stack"),
        [ExecutorConfig(node="m-local", slots=2, env={"JOBWIRE_METRICS_PORT": str(ports["executor"])})],
        env={"JOBWIRE_METRICS_PORT": str(ports["scheduler"]), "JOBWIRE_METRICS_ADDR": "127.0.0.1"},
    )
    s.start()
    yield s
    s.stop()


def scrape(port: int) -> str:
    r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert r.status_code == 200
    return r.text


def test_each_service_exports_what_a_real_job_did(stack: Stack, ports: dict[str, int]) -> None:
    with httpx.Client(base_url=stack.api_url, headers=stack.auth_headers, timeout=30) as api:
        script = (
            f'printf \'{OUTPUT}\'; mkdir -p "$JOBWIRE_OUTPUT_DIR"; printf 12345 > "$JOBWIRE_OUTPUT_DIR/r.txt"'
        )
        job = submit(api, command=["sh", "-c", script])
        wait_state(api, job["id"], "succeeded")

        sched = scrape(ports["scheduler"])
        assert (sample(sched, "jobwire_submit_to_running_seconds_count", backend="local") or 0) >= 1
        assert (sample(sched, "jobwire_scheduler_batch_messages_count") or 0) >= 1
        assert (sample(sched, "jobwire_scheduler_batch_duration_seconds_count") or 0) >= 1
        assert sample(sched, "jobwire_scheduler_failed_batches_total") == 0
        assert sample(sched, "jobwire_scheduler_dispatches_total", node="m-local") == 1

        def executor_done() -> str | None:
            text = scrape(ports["executor"])
            return text if (sample(text, "jobwire_artifact_bytes_total") or 0) >= 5 else None

        ex = wait_for(executor_done, 10, what="the executor's artifact bytes")
        assert sample(ex, "jobwire_log_bytes_total", stream="stdout") == len(OUTPUT)
        assert sample(ex, "jobwire_artifact_bytes_total") == 5
        assert (sample(ex, "jobwire_executor_poll_duration_seconds_count", backend="local") or 0) >= 1
        assert sample(ex, "jobwire_backend_errors_total", backend="local", call="poll") is None

        gw = api.get("/metrics").text
        assert sample(gw, "jobwire_jobs", state="succeeded", backend="local") == 1
        assert sample(gw, "jobwire_node_up", node="m-local", backend="local") == 1
        assert sample(gw, "jobwire_node_slots", node="m-local") == 2
        assert sample(gw, "jobwire_submits_total", status="201") == 1
        assert api.get("/metrics", headers={"Authorization": ""}).status_code == 401

        # each series on the process that counts it, not a constant 0 on the others
        assert "jobwire_submits_total" not in sched and "jobwire_log_bytes" not in sched
        assert "jobwire_scheduler_" not in ex and "jobwire_submit_duration_seconds" not in ex
        assert "jobwire_scheduler_" not in gw and "jobwire_artifact_bytes" not in gw
