"""The real stack as users run it: nats-server, scheduler, executors and gateway as processes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from jobwire.stack.processes import free_port
from jobwire.stack.stack import ExecutorConfig, Stack, StackConfig

FAST = {
    "JOBWIRE_SCHEDULER_TICK": "0.2",
    "JOBWIRE_SCHEDULER_NODE_TIMEOUT": "4",
    "JOBWIRE_SCHEDULER_TIMEOUT_GRACE": "3",
    "JOBWIRE_EXECUTOR_HEARTBEAT_INTERVAL": "0.5",
    "JOBWIRE_EXECUTOR_TICK_INTERVAL": "0.1",
    "JOBWIRE_EXECUTOR_KILL_GRACE": "2",
    "JOBWIRE_LOG_LEVEL": "INFO",
}


def make_stack(
    home: Path,
    executors: list[ExecutorConfig],
    database_url: str | None = None,
    env: dict[str, str] | None = None,
) -> Stack:
    config = StackConfig(
        home=home,
        api_port=free_port(),
        nats_port=free_port(),
        nats_monitor_port=free_port(),
        database_url=database_url,
        executors=executors,
        env={**FAST, **(env or {})},
    )
    return Stack(config)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = make_stack(tmp_path_factory.mktemp("stack"), [ExecutorConfig(node="e2e-a", slots=2)])
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, headers=stack.auth_headers, timeout=30) as client:
        yield client


def wait_for(pred: Callable[[], object], timeout: float = 30.0, every: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_state(api: httpx.Client, job_id: str, states: set[str] | str, timeout: float = 30.0) -> dict:
    want = {states} if isinstance(states, str) else states

    def check():
        r = api.get(f"/v1/jobs/{job_id}")
        return r.json() if r.status_code == 200 and r.json()["state"] in want else None

    return wait_for(check, timeout, what=f"job {job_id} to be {sorted(want)}")


def submit(api: httpx.Client, **spec) -> dict:
    r = api.post("/v1/jobs", json=spec)
    assert r.status_code in (201, 202), r.text
    return r.json()
