"""The real stack as users run it: nats-server, scheduler, executors and gateway as processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobwire.stack.processes import free_port
from jobwire.stack.stack import ExecutorConfig, Stack, StackConfig
from tests.support.jobapi import logs, submit, wait_for, wait_state

__all__ = ["logs", "make_stack", "submit", "wait_for", "wait_state"]

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
    owner: str | None = None,
) -> Stack:
    config = StackConfig(
        home=home,
        owner=owner,
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
