"""GET /v1/jobs/{id}/logs: plain text or SSE, one read or follow, resumable by stream sequence."""

from __future__ import annotations

import asyncio
import time

import pytest

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj

pytestmark = pytest.mark.integration
SSE = {"accept": "text/event-stream"}


async def finished_job_with_output(seed) -> tuple[str, list[int]]:
    job_id = await seed.job(state="succeeded", attempt=1)
    seqs = [
        await seed.chunk(job_id, "one\n"),
        await seed.chunk(job_id, "oops\n", stream="stderr"),
        await seed.chunk(job_id, "two\n"),
        await seed.chunk(job_id, "", eof=True),
        await seed.chunk(job_id, "", stream="stderr", eof=True),
    ]
    await seed.chunk(await seed.job(), "another job's output\n")  # must never show up
    return job_id, seqs


async def test_plain_text_is_the_concatenated_output(gateway, seed):
    job_id, _ = await finished_job_with_output(seed)
    r = await gateway.get(f"/v1/jobs/{job_id}/logs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text == "one\noops\ntwo\n"
    assert (await gateway.get(f"/v1/jobs/{job_id}/logs", params={"stream": "stdout"})).text == "one\ntwo\n"
    assert (await gateway.get(f"/v1/jobs/{job_id}/logs", params={"stream": "stderr"})).text == "oops\n"


async def test_job_without_output_has_empty_logs(gateway, seed):
    job_id = await seed.job()
    r = await gateway.get(f"/v1/jobs/{job_id}/logs")
    assert r.status_code == 200
    assert r.text == ""


async def test_sse_ids_are_stream_sequences_and_resume_without_gaps_or_repeats(gateway, seed, parse_sse):
    job_id, seqs = await finished_job_with_output(seed)
    r = await gateway.get(f"/v1/jobs/{job_id}/logs", headers=SSE)
    assert r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.text)
    assert [e["event"] for e in events] == ["log"] * 5 + ["end"]
    assert [int(e["id"]) for e in events[:-1]] == seqs
    chunks = [v1.decode(e["data"], v1.LogChunk) for e in events[:-1]]
    assert [c.data for c in chunks] == ["one\n", "oops\n", "two\n", "", ""]

    resumed = parse_sse(
        (await gateway.get(f"/v1/jobs/{job_id}/logs", headers=SSE | {"Last-Event-ID": str(seqs[1])})).text
    )
    assert [int(e["id"]) for e in resumed[:-1]] == seqs[2:]
    by_offset = await gateway.get(f"/v1/jobs/{job_id}/logs", params={"offset": seqs[2]})
    assert by_offset.text == ""  # only eof chunks remain after "two"
    by_offset = await gateway.get(f"/v1/jobs/{job_id}/logs", params={"offset": seqs[0]})
    assert by_offset.text == "oops\ntwo\n"


async def test_follow_streams_chunks_as_they_come_and_ends_with_the_output(serve_gateway, seed, parse_sse):
    job_id = await seed.job(state="running", attempt=1)
    await seed.chunk(job_id, "before\n")
    # A long grace: the response must end because of the eofs, not because the output went quiet.
    async with (
        serve_gateway(log_eof_grace=30) as gateway,
        gateway.stream("GET", f"/v1/jobs/{job_id}/logs", params={"follow": "true"}) as r,
    ):
        assert r.status_code == 200
        received = ""
        lines = r.aiter_text()
        while "before\n" not in received:
            received += await anext(lines)
        await seed.chunk(job_id, "during\n")
        while "during\n" not in received:
            received += await anext(lines)
        started = time.monotonic()
        await seed.chunk(job_id, "last\n", eof=True)
        await seed.chunk(job_id, "", stream="stderr", eof=True)
        await seed.set_state(job_id, "succeeded")
        await seed.event(job_id, "succeeded", previous="running", attempt=1)
        async for text in lines:
            received += text
    assert received == "before\nduring\nlast\n"
    assert time.monotonic() - started < 5


async def test_follow_sse_resumes_after_last_event_id(gateway, seed, parse_sse):
    job_id = await seed.job(state="running", attempt=1)
    first = await seed.chunk(job_id, "a\n")
    second = await seed.chunk(job_id, "b\n")

    async def finish() -> None:
        await asyncio.sleep(0.3)
        await seed.chunk(job_id, "c\n", eof=True)
        await seed.chunk(job_id, "", stream="stderr", eof=True)
        await seed.set_state(job_id, "failed")
        await seed.event(job_id, "failed", previous="running", attempt=1)

    task = asyncio.create_task(finish())
    r = await gateway.get(
        f"/v1/jobs/{job_id}/logs", params={"follow": "true"}, headers=SSE | {"Last-Event-ID": str(first)}
    )
    await task
    events = parse_sse(r.text)
    assert events[-1]["event"] == "end"
    ids = [int(e["id"]) for e in events[:-1]]
    assert ids[0] == second
    assert ids == sorted(set(ids))
    assert [v1.decode(e["data"], v1.LogChunk).data for e in events[:-1]] == ["b\n", "c\n", ""]


async def test_follow_of_a_finished_job_ends_at_once(gateway, seed):
    job_id, _ = await finished_job_with_output(seed)
    started = time.monotonic()
    r = await gateway.get(f"/v1/jobs/{job_id}/logs", params={"follow": "true"})
    assert r.text == "one\noops\ntwo\n"
    assert time.monotonic() - started < 0.9  # below the 1 s grace: it knew the output had ended


async def test_follow_of_a_finished_job_without_eof_ends_after_the_grace(gateway, seed):
    job_id = await seed.job(state="failed", attempt=1)
    await seed.chunk(job_id, "cut short\n")  # the executor vanished: no eof will come
    started = time.monotonic()
    r = await gateway.get(f"/v1/jobs/{job_id}/logs", params={"follow": "true"})
    assert r.text == "cut short\n"
    assert 0.9 < time.monotonic() - started < 5


async def test_bad_log_requests(gateway, seed):
    job_id = await seed.job()
    r = await gateway.get(f"/v1/jobs/{job_id}/logs", headers=SSE | {"Last-Event-ID": "abc"})
    assert r.status_code == 400
    assert "Last-Event-ID" in r.json()["detail"]
    r = await gateway.get(f"/v1/jobs/{job_id}/logs", params={"stream": "stdin"})
    assert r.status_code == 400
    assert "stream" in r.json()["detail"]
    r = await gateway.get(f"/v1/jobs/{job_id}/logs", params={"offset": -1})
    assert r.status_code == 400
    assert (await gateway.get(f"/v1/jobs/{v1.new_job_id()}/logs")).status_code == 404


async def test_a_client_leaving_a_follow_frees_its_consumer(gateway, seed):
    job_id = await seed.job(state="running", attempt=1)
    await seed.chunk(job_id, "hello\n")
    async with gateway.stream("GET", f"/v1/jobs/{job_id}/logs", params={"follow": "true"}) as r:
        text = r.aiter_text()  # kept: a dropped iterator closes the response
        assert await anext(text) == "hello\n"
        assert len(await seed.bus.js.consumers_info(sj.LOG_STREAM)) == 1
    for _ in range(100):
        if not await seed.bus.js.consumers_info(sj.LOG_STREAM):
            break
        await asyncio.sleep(0.05)
    assert await seed.bus.js.consumers_info(sj.LOG_STREAM) == []
    assert (await gateway.get("/health")).status_code == 200
