"""POST /v1/jobs: bad input is refused with problem+json and publishes nothing; good input is queued."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid

import nats
import pytest

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj

pytestmark = pytest.mark.integration

PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance"}
GOOD = {"name": "train", "command": ["python", "train.py"], "resources": {"gpus": 1, "memory": "4G"}}


def assert_problem(response, status: int, *, detail_has: str = "", path: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert set(body) >= PROBLEM_FIELDS, body
    assert body["status"] == status
    assert body["type"].startswith("urn:jobwire:problem:")
    assert detail_has in body["detail"], body
    if path is not None:
        assert body.get("path") == path, body
    return body


@pytest.mark.parametrize(
    ("body", "status", "detail_has", "path"),
    [
        (b'{"command": ["x"]', 400, "not valid JSON", None),
        (b'{"command": ["x"], "resourcez": {}}', 422, "unknown field `resourcez`", "$.resourcez"),
        (b'{"command": ["x"], "resources": {"gpux": 1}}', 422, "unknown field `gpux`", "$.resources.gpux"),
        (b'{"command": ["x"], "resources": {"gpus": 99}}', 422, "<= 64", "$.resources.gpus"),
        (b'{"command": ["x"], "priority": 5000}', 422, "<= 1000", "$.priority"),
        (b'{"name": "no-command"}', 422, "exactly one of 'command'", None),
        (b'{"command": "ls -l"}', 422, "got `str`", "$.command"),
        (b'{"command": ["x"], "resources": {"memory": "4Q"}}', 422, "not a size", "$.resources"),
        (b"[1, 2]", 422, "Expected `object`", None),
        (b"", 422, "empty", None),
    ],
)
async def test_bad_body_is_a_problem_and_publishes_nothing(gateway, seed, body, status, detail_has, path):
    r = await gateway.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    problem = assert_problem(r, status, detail_has=detail_has, path=path)
    assert problem["instance"] == "/v1/jobs"
    assert await seed.commands() == []


async def test_not_json_content_type_is_415(gateway, seed):
    r = await gateway.post("/v1/jobs", content=b"command=x", headers={"content-type": "text/plain"})
    assert_problem(r, 415, detail_has="application/json")
    assert await seed.commands() == []


async def test_body_over_the_limit_is_413(gateway, seed, settings):
    huge = {"script": "x" * (settings.max_body_size + 10)}
    r = await gateway.post("/v1/jobs", json=huge)
    assert_problem(r, 413, detail_has="larger")
    assert await seed.commands() == []


async def test_bad_idempotency_key_is_400(gateway, seed):
    r = await gateway.post("/v1/jobs", json=GOOD, headers={"Idempotency-Key": "x" * 300})
    assert_problem(r, 400, detail_has="Idempotency-Key")
    assert await seed.commands() == []


async def test_without_scheduler_the_job_is_durably_queued_202(gateway, seed):
    r = await gateway.post("/v1/jobs", json=GOOD)
    assert r.status_code == 202, r.text
    job = r.json()
    assert v1.is_job_id(job["id"])
    assert job["state"] == "queued"
    assert job["owner"] == "root"  # the caller the token names
    assert job["resources"]["memory"] == 4 * 1024**3
    assert r.headers["location"] == f"/v1/jobs/{job['id']}"
    [msg] = await seed.commands()
    assert msg.subject == sj.cmd_subject("submit")
    assert msg.headers[sj.MSG_ID_HEADER] == job["id"]
    assert "traceparent" in msg.headers  # published inside the request's span
    command = v1.decode(msg.data, v1.Command)
    assert isinstance(command, v1.SubmitJob)
    assert command.job_id == job["id"]
    assert command.spec.command == GOOD["command"]


async def test_same_idempotency_key_gives_the_same_job_and_one_message(gateway, seed):
    key = {"Idempotency-Key": f"retry-{uuid.uuid4()}"}
    first = await gateway.post("/v1/jobs", json=GOOD, headers=key)
    second = await gateway.post("/v1/jobs", json=GOOD, headers=key)
    other = await gateway.post("/v1/jobs", json=GOOD, headers={"Idempotency-Key": f"other-{uuid.uuid4()}"})
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"] != other.json()["id"]
    assert second.headers["idempotent-replayed"] == "true"
    ids = [m.headers[sj.MSG_ID_HEADER] for m in await seed.commands()]
    assert ids == [first.json()["id"], other.json()["id"]]


@contextlib.asynccontextmanager
async def fake_scheduler(seed):
    """Stores each submitted job, then announces it with a 'queued' event, as the scheduler does."""

    stop = asyncio.Event()
    sub = await seed.bus.js.pull_subscribe(sj.cmd_subject("submit"), durable="fake-scheduler")

    async def run() -> None:
        while not stop.is_set():  # a flag, not only the cancel: nats-py's fetch may swallow that
            try:
                msgs = await sub.fetch(16, timeout=0.2)
            except nats.errors.TimeoutError:
                continue
            for msg in msgs:
                cmd = v1.decode(msg.data, v1.SubmitJob)
                await seed.job(job_id=cmd.job_id, spec=cmd.spec, node="n1")
                await seed.event(cmd.job_id, "queued", node="n1", queue_position=3)
                await msg.ack()

    task = asyncio.create_task(run())
    try:
        yield
    finally:
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


async def test_with_a_scheduler_the_stored_job_comes_back_201(serve_gateway, seed):
    # the tests' half-second accept_timeout keeps their 202s quick; a loaded machine's fake scheduler
    # needs longer to store and announce (this once missed it at load 6)
    async with serve_gateway(accept_timeout=10) as gateway, fake_scheduler(seed):
        r = await gateway.post("/v1/jobs", json=GOOD)
        got = await gateway.get(r.headers.get("location", "/v1/jobs/none"))
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["node"] == "n1"  # as the scheduler placed it, not as submitted
    assert job["queue_position"] == 3
    assert r.headers["location"] == f"/v1/jobs/{job['id']}"
    assert got.status_code == 200
    assert got.json()["id"] == job["id"]


async def test_replayed_key_returns_the_stored_job(serve_gateway, seed):
    key = {"Idempotency-Key": f"stored-{uuid.uuid4()}"}
    async with serve_gateway(accept_timeout=10) as gateway, fake_scheduler(seed):
        first = await gateway.post("/v1/jobs", json=GOOD, headers=key)
        second = await gateway.post("/v1/jobs", json=GOOD, headers=key)
    assert first.status_code == second.status_code == 201
    assert json.loads(first.text)["id"] == second.json()["id"]


async def test_a_replayed_array_submit_answers_with_the_stored_array_and_sends_nothing_again(
    gateway, seed, sessions
):
    from datetime import UTC, datetime

    from jobwire.store.models import ArrayRow

    key = {"Idempotency-Key": f"array-{uuid.uuid4()}"}
    body = {**GOOD, "array": {"count": 100_000, "parallelism": 10}}
    first = await gateway.post("/v1/jobs", json=body, headers=key)
    assert first.status_code == 202 and first.headers["location"] == f"/v1/arrays/{first.json()['id']}"
    async with sessions() as s, s.begin():  # what the scheduler stores for it
        s.add(
            ArrayRow(
                id=first.json()["id"], owner="admin", name=None, spec=b"{}", count=100_000, start=0,
                parallelism=10, materialised=0, priority=0, held=False, cancelled=False,
                created_at=datetime.now(UTC),
            )
        )  # fmt: skip
    again = await gateway.post("/v1/jobs", json=body, headers=key)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"] and again.json()["array"]["count"] == 100_000
    assert len(await seed.commands()) == 1
