"""Hold and release: 409 at once where the job's state or its node cannot take them, else a command
to the scheduler answered once its event shows the change (202 while it has not)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.store.models import NodeRow

from .test_auth import bearer, is_problem

pytestmark = pytest.mark.integration


async def add_node(sessions, name: str, *, hold: bool) -> None:
    capacity = v1.NodeCapacity(slots=4, hold=hold)
    async with sessions() as s, s.begin():
        s.add(
            NodeRow(
                name=name,
                backend="hpc" if hold else "docker",
                state="up",
                capacity=v1.encode(capacity),
                registered_at=datetime.now(UTC),
            )
        )


def problem(r, slug: str) -> str:
    assert is_problem(r, 409), r.text
    body = r.json()
    assert body["type"] == f"urn:jobwire:problem:{slug}", body
    return str(body["detail"])


@pytest.mark.parametrize("state", ["running", "succeeded", "cancelled"])
async def test_hold_of_a_running_or_finished_job_is_409(gateway, seed, state):
    job_id = await seed.job(state=state, attempt=1)
    detail = problem(await gateway.post(f"/v1/jobs/{job_id}/hold"), "cannot-hold")
    assert state in detail and "queued" in detail
    assert await seed.commands() == []


async def test_hold_of_a_run_started_where_it_cannot_be_held_is_409(gateway, seed, sessions):
    await add_node(sessions, "dock1", hold=False)
    job_id = await seed.job(state="starting", attempt=1, node="dock1")
    detail = problem(await gateway.post(f"/v1/jobs/{job_id}/hold"), "cannot-hold")
    assert "dock1" in detail and "cannot hold a started run" in detail
    assert await seed.commands() == []


async def test_hold_of_a_batch_job_still_queued_is_sent_to_the_scheduler(gateway, seed, sessions):
    await add_node(sessions, "cluster1", hold=True)
    job_id = await seed.job(state="starting", attempt=1, node="cluster1")
    r = await gateway.post(f"/v1/jobs/{job_id}/hold")
    assert r.status_code == 202 and r.json()["state"] == "starting", r.text
    [msg] = await seed.commands()
    assert msg.subject == sj.cmd_subject("hold")
    assert v1.decode(msg.data, v1.Command) == v1.HoldJob(job_id=job_id)


async def test_hold_answered_by_the_held_event_is_200_and_release_likewise(gateway, seed):
    job_id = await seed.job(state="queued")

    async def scheduler(n: int, state: str, previous: str) -> None:
        while len(await seed.commands()) < n:
            await asyncio.sleep(0.02)
        await seed.set_state(job_id, state)
        await seed.event(job_id, state, previous=previous)

    task = asyncio.create_task(scheduler(1, "held", "queued"))
    r = await gateway.post(f"/v1/jobs/{job_id}/hold")
    await task
    assert r.status_code == 200 and r.json()["state"] == "held", r.text
    again = await gateway.post(f"/v1/jobs/{job_id}/hold")  # already held: nothing to do
    assert again.status_code == 200 and len(await seed.commands()) == 1

    task = asyncio.create_task(scheduler(2, "queued", "held"))
    r = await gateway.post(f"/v1/jobs/{job_id}/release")
    await task
    assert r.status_code == 200 and r.json()["state"] == "queued", r.text
    commands = [v1.decode(m.data, v1.Command) for m in await seed.commands()]
    assert commands == [v1.HoldJob(job_id=job_id), v1.ReleaseJob(job_id=job_id)]


async def test_release_of_a_job_not_held_is_409(gateway, seed):
    job_id = await seed.job(state="queued")
    detail = problem(await gateway.post(f"/v1/jobs/{job_id}/release"), "not-held")
    assert "queued" in detail
    assert await seed.commands() == []


async def test_another_users_job_is_404_and_holds_are_audited(gateway, seed, mint):
    alice, bob = await mint("alice"), await mint("bob")
    theirs = await seed.job(owner="bob", state="queued")
    for action in ("hold", "release"):
        r = await gateway.post(f"/v1/jobs/{theirs}/{action}", headers=bearer(alice))
        assert is_problem(r, 404) and "bob" not in r.text
    assert await seed.commands() == []
    r = await gateway.post(f"/v1/jobs/{theirs}/hold", headers=bearer(bob))
    assert r.status_code == 202, r.text
    got = [(e.actor, e.action, e.status) for e in await seed.audit()]  # stored before each answer
    assert got == [("alice", "jobs.hold", 404), ("alice", "jobs.release", 404), ("bob", "jobs.hold", 202)]


@pytest.mark.parametrize("job_id", ["not-a-job", "%C3%8E%F1%97%9A%98%0CVGW", "a.b", "abc%0A"])
async def test_hold_and_release_of_a_text_that_is_no_job_id_is_404_not_500(gateway, seed, job_id):
    # Schemathesis sent ids like these: the wait subscribed to the job's subject before reading the job
    for action in ("hold", "release"):
        r = await gateway.post(f"/v1/jobs/{job_id}/{action}")
        assert is_problem(r, 404), r.text
        assert "there is no job" in r.json()["detail"]
    assert await seed.commands() == []
