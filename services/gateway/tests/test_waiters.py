"""The gateway's event waiters on a real NATS: which events reach the process, and when."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.gateway.waiters import EventWaiters, wait

pytestmark = pytest.mark.integration


async def send(bus, job_id: str, state: str, previous: str) -> None:  # type: ignore[no-untyped-def]
    event = v1.JobTransitioned(
        job_id=job_id, state=v1.JobState(state), previous=v1.JobState(previous), at=datetime.now(UTC)
    )
    await bus.publish(sj.event_subject(job_id, state), event)


def anything(event: v1.Event) -> bool:
    return True


async def test_starting_and_running_reach_only_a_wait_that_asks_for_every_event(clean_bus):
    """A job's ``starting`` and ``running`` events (half of them under an executor) are not taken off the
    wire for ordinary waits, which need none of them; a hold or release wait gets its job's all."""
    waiters = EventWaiters(clean_bus.nc)
    await waiters.start()
    plain, every = v1.new_job_id(), v1.new_job_id()
    try:
        async with waiters.watch_every_event(every, anything) as seen_all:
            with waiters.watch(plain, anything) as seen:
                for job_id in (plain, every):
                    await send(clean_bus, job_id, "running", "starting")
                got = await wait(seen_all, 10)
                assert isinstance(got, v1.JobTransitioned) and got.state is v1.JobState.RUNNING
                await send(clean_bus, plain, "succeeded", "running")
                got = await wait(seen, 10)  # the first event this wait saw
                assert isinstance(got, v1.JobTransitioned) and got.state is v1.JobState.SUCCEEDED
        # the per-job subscription is gone with its wait
        with waiters.watch(every, anything) as later:
            await send(clean_bus, every, "running", "starting")
            assert await wait(later, 0.5) is None
    finally:
        await waiters.stop()
