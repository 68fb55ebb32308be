"""``jobwire_backend_errors_total{backend, call}`` (issue 15): a failed backend call — sbatch, qstat,
docker, an SSH command — is counted under what was asked (start, poll, signal), and the work goes on
once the backend answers again (the run is started, followed and stopped). The failures are injected
into a real local executor's calls; everything else is real (NATS, the process runner)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from jobwire.contracts.v1 import JobState

pytestmark = pytest.mark.integration


def errors(call: str) -> float:
    labels = {"backend": "local", "call": call}
    return REGISTRY.get_sample_value("jobwire_backend_errors_total", labels) or 0.0


async def test_failed_backend_calls_are_counted_by_call_and_the_work_goes_on(harness) -> None:
    svc = await harness.executor("errors-node")
    left = {"start": 1, "poll": 2, "signal": 1}

    def failing(call: str, real: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def call_or_fail(*args: Any, **kwargs: Any) -> Any:
            if left[call] > 0:
                left[call] -= 1
                raise OSError(f"{call}: connection refused (injected)")
            return await real(*args, **kwargs)

        return call_or_fail

    before = {call: errors(call) for call in left}
    ex = svc.executor
    ex.start = failing("start", ex.start)  # type: ignore[method-assign]
    ex.poll = failing("poll", ex.poll)  # type: ignore[method-assign]
    ex.signal = failing("signal", ex.signal)  # type: ignore[method-assign]

    job = await harness.run(svc.node, {"command": ["sleep", "60"]})
    await harness.wait(job, "running", timeout=60)  # the RunJob is redelivered after the failed start
    await harness.cancel(svc.node, job, outcome=JobState.CANCELLED, reason="test", grace=1)
    done = await harness.wait(job, "finished", timeout=60)  # the cancel is redelivered after the failed TERM
    assert done.outcome == JobState.CANCELLED
    assert left == {"start": 0, "poll": 0, "signal": 0}
    assert {call: errors(call) - before[call] for call in left} == {"start": 1, "poll": 2, "signal": 1}
