"""A batch that keeps failing for one cause is logged once, with the cause, and nothing is lost."""

import asyncio
import logging

import pytest
from sqlalchemy import text

from jobwire.contracts import v1
from tests.support.fake_node import submit

pytestmark = pytest.mark.integration


async def rename(scheduler, old: str, new: str) -> None:
    async with scheduler.engine.begin() as conn:
        await conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


async def test_a_failing_batch_is_logged_once_with_its_cause_and_its_job_is_stored_after(
    scheduler, clean_bus, events, caplog
):
    caplog.set_level(logging.DEBUG, logger="jobwire.scheduler.pipeline")
    # every batch storing a job fails while its transitions have nowhere to go
    await rename(scheduler, "job_transitions", "job_transitions_away")
    try:
        jid = await submit(clean_bus, v1.JobSpec(command=["true"], expected_runtime=1))
        pipeline = scheduler.pipeline
        for _ in range(200):
            if pipeline.failures >= 3:
                break
            await asyncio.sleep(0.05)
        assert pipeline.failures >= 3, "the batch did not fail and retry"
    finally:
        await rename(scheduler, "job_transitions_away", "job_transitions")
    await events.wait_state(jid, "queued", timeout=15)
    for _ in range(100):  # the event is published before the batch is over
        if pipeline.failing is None:
            break
        await asyncio.sleep(0.05)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "batch failed" in r.getMessage()]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "job_transitions" in errors[0].getMessage()  # the cause, in the one line
    again = [r for r in caplog.records if "succeed again" in r.getMessage()]
    assert len(again) == 1 and again[0].levelno == logging.WARNING
    assert pipeline.failing is None and pipeline.failures == 0
