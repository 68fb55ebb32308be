"""Cancel and delete: commands to the scheduler, answered once its event shows the outcome."""

from __future__ import annotations

import asyncio

import pytest

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("state", ["succeeded", "failed", "cancelled", "timed_out"])
async def test_cancel_of_a_finished_job_is_409_and_publishes_nothing(gateway, seed, state):
    job_id = await seed.job(state=state)
    r = await gateway.post(f"/v1/jobs/{job_id}/cancel")
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"] == "urn:jobwire:problem:job-finished"
    assert state in body["detail"]
    assert await seed.commands() == []


async def test_cancel_of_an_unknown_job_is_404(gateway, seed):
    r = await gateway.post(f"/v1/jobs/{v1.new_job_id()}/cancel")
    assert r.status_code == 404
    assert await seed.commands() == []


async def test_cancel_without_scheduler_is_202_and_queued(gateway, seed):
    job_id = await seed.job(state="running", attempt=1)
    r = await gateway.post(f"/v1/jobs/{job_id}/cancel")
    assert r.status_code == 202
    assert r.json()["state"] == "running"
    [msg] = await seed.commands()
    assert msg.subject == sj.cmd_subject("cancel")
    command = v1.decode(msg.data, v1.Command)
    assert isinstance(command, v1.CancelJob)
    assert command.job_id == job_id


async def test_cancel_answered_by_the_terminal_event_is_200(gateway, seed):
    job_id = await seed.job(state="queued")

    async def scheduler() -> None:
        while not await seed.commands():
            await asyncio.sleep(0.02)
        await seed.set_state(job_id, "cancelled")
        await seed.event(job_id, "cancelled", previous="queued")

    task = asyncio.create_task(scheduler())
    r = await gateway.post(f"/v1/jobs/{job_id}/cancel")
    await task
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "cancelled"


async def test_delete_without_scheduler_is_202(gateway, seed):
    job_id = await seed.job(state="succeeded")
    r = await gateway.delete(f"/v1/jobs/{job_id}")
    assert r.status_code == 202
    assert r.json()["id"] == job_id
    [msg] = await seed.commands()
    assert isinstance(v1.decode(msg.data, v1.Command), v1.DeleteJob)


async def test_delete_answered_by_the_deleted_event_is_204(gateway, seed):
    job_id = await seed.job(state="succeeded")

    async def scheduler() -> None:
        while not await seed.commands():
            await asyncio.sleep(0.02)
        await seed.remove(job_id)
        from datetime import UTC, datetime

        await seed.bus.publish(
            sj.event_subject(job_id, "deleted"), v1.JobDeleted(job_id=job_id, at=datetime.now(UTC))
        )

    task = asyncio.create_task(scheduler())
    r = await gateway.delete(f"/v1/jobs/{job_id}")
    await task
    assert r.status_code == 204
    assert r.content == b""
    assert (await gateway.get(f"/v1/jobs/{job_id}")).status_code == 404


async def test_delete_of_an_unknown_job_is_404(gateway, seed):
    assert (await gateway.delete(f"/v1/jobs/{v1.new_job_id()}")).status_code == 404
    assert await seed.commands() == []
