"""GET /v1/jobs/{id}/events (SSE) and /v1/jobs/{id}/progress."""

from __future__ import annotations

import asyncio

import pytest

from jobwire.contracts import v1

pytestmark = pytest.mark.integration


async def test_events_of_a_finished_job_replay_and_end(gateway, seed, parse_sse):
    job_id = await seed.job(state="succeeded", attempt=1)
    seqs = [
        await seed.event(job_id, "queued"),
        await seed.event(job_id, "running", previous="queued", attempt=1),
        await seed.progress(job_id, {"step": 1}),
        await seed.event(job_id, "succeeded", previous="running", attempt=1),
    ]
    await seed.event(await seed.job(), "queued")  # another job's: never shown
    r = await gateway.get(f"/v1/jobs/{job_id}/events")
    assert r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.text)
    assert [e["event"] for e in events] == ["transition", "transition", "progress", "transition", "end"]
    assert [int(e["id"]) for e in events[:-1]] == seqs
    last = v1.decode(events[3]["data"], v1.JobTransitioned)
    assert last.state is v1.JobState.SUCCEEDED

    resumed = parse_sse(
        (await gateway.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": str(seqs[1])})).text
    )
    assert [int(e["id"]) for e in resumed[:-1]] == seqs[2:]
    after_end = parse_sse((await gateway.get(f"/v1/jobs/{job_id}/events", params={"offset": seqs[-1]})).text)
    assert after_end == [{"event": "end", "data": ""}]


async def test_events_follow_until_the_job_finishes(gateway, seed, parse_sse):
    job_id = await seed.job(state="queued")
    first = await seed.event(job_id, "queued")

    async def run_job() -> None:
        await asyncio.sleep(0.3)
        await seed.event(job_id, "running", previous="queued", attempt=1)
        await seed.progress(job_id, 0.5)
        await seed.set_state(job_id, "failed", attempt=1)
        await seed.event(job_id, "failed", previous="running", attempt=1)
        await seed.progress(job_id, 1.0)  # after the finish: not part of this stream

    task = asyncio.create_task(run_job())
    r = await gateway.get(f"/v1/jobs/{job_id}/events")
    await task
    events = parse_sse(r.text)
    assert int(events[0]["id"]) == first
    states = [v1.decode(e["data"], v1.JobTransitioned).state for e in events if e["event"] == "transition"]
    assert states == [v1.JobState.QUEUED, v1.JobState.RUNNING, v1.JobState.FAILED]
    assert events[-2]["event"] == "transition"
    assert events[-1]["event"] == "end"


async def test_lost_with_attempts_left_does_not_end_the_stream(gateway, seed, parse_sse):
    job_id = await seed.job(state="running", attempt=1, max_attempts=2)

    async def run_job() -> None:
        await asyncio.sleep(0.2)
        await seed.event(job_id, "lost", previous="running", attempt=1)
        await seed.event(job_id, "queued", previous="lost", attempt=1)
        await seed.event(job_id, "running", previous="queued", attempt=2)
        await seed.event(job_id, "lost", previous="running", attempt=2)

    task = asyncio.create_task(run_job())
    r = await gateway.get(f"/v1/jobs/{job_id}/events")
    await task
    states = [v1.decode(e["data"], v1.JobTransitioned).state.value for e in parse_sse(r.text)[:-1]]
    assert states == ["lost", "queued", "running", "lost"]


async def test_progress_is_the_last_report(gateway, seed):
    job_id = await seed.job(state="running", attempt=1)
    r = await gateway.get(f"/v1/jobs/{job_id}/progress")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == "urn:jobwire:problem:no-progress"
    await seed.progress(job_id, {"epoch": 1})
    await seed.progress(job_id, {"epoch": 2, "loss": 0.1})
    r = await gateway.get(f"/v1/jobs/{job_id}/progress")
    assert r.status_code == 200
    assert r.json()["progress"] == {"epoch": 2, "loss": 0.1}
    assert (await gateway.get(f"/v1/jobs/{v1.new_job_id()}/progress")).status_code == 404
