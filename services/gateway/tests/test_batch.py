"""``POST /v1/jobs:batch``: many specs in one request, stored together, each with its own id; a bad spec
or a quota refuses the whole batch with nothing published."""

from __future__ import annotations

import time

import pytest

from jobwire.contracts import v1

from .conftest import bearer

pytestmark = pytest.mark.integration
SPEC = {"command": ["true"], "expected_runtime": 1}


async def test_a_batch_is_stored_with_one_id_per_spec(serve_gateway, scheduler):
    async with serve_gateway(accept_timeout=10) as gateway:
        await stored_batch(gateway)


async def stored_batch(gateway) -> None:  # type: ignore[no-untyped-def]
    specs = [{**SPEC, "name": f"part-{i}"} for i in range(300)]
    t0 = time.perf_counter()
    r = await gateway.post("/v1/jobs:batch", json={"jobs": specs})
    print(f"300-job batch stored in {time.perf_counter() - t0:.2f} s")
    assert r.status_code == 201, r.text
    ids = r.json()["ids"]
    assert len(ids) == len(set(ids)) == 300 and r.json()["accepted"] is True
    for i in (0, 150, 299):  # stored before the answer, in the order given
        job = (await gateway.get(f"/v1/jobs/{ids[i]}")).json()
        assert job["name"] == f"part-{i}" and job["state"] == "queued" and job["owner"] == "root"
    bare = await gateway.post("/v1/jobs:batch", json=[SPEC, SPEC])  # a bare array is a batch too
    assert bare.status_code == 201 and len(bare.json()["ids"]) == 2


async def test_one_bad_spec_refuses_the_batch_and_nothing_is_published(gateway, seed):
    r = await gateway.post("/v1/jobs:batch", json={"jobs": [SPEC, SPEC, {**SPEC, "cpus": 2}]})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert "$.jobs[2]" in r.text, r.text
    r = await gateway.post("/v1/jobs:batch", json={"jobs": [SPEC] * 10_001})
    assert r.status_code == 422 and "1 to 10000" in r.json()["detail"]
    assert (await gateway.post("/v1/jobs:batch", json={"jobs": []})).status_code == 422
    assert await seed.commands() == []


async def test_a_batch_is_admitted_whole_or_refused(gateway, mint, seed):
    alice = bearer(await mint("alice"))
    assert (await gateway.put("/v1/quotas/alice", json={"max_active": 5})).status_code == 200
    r = await gateway.post("/v1/jobs:batch", json=[SPEC] * 6, headers=alice)
    assert r.status_code == 429 and r.json()["limit"] == "max_active" and int(r.headers["retry-after"]) > 0
    assert await seed.commands() == []
    r = await gateway.post("/v1/jobs:batch", json=[SPEC] * 5, headers=alice)
    assert r.status_code == 202, r.text  # no scheduler here: durably queued
    (command,) = await seed.commands()
    sent = v1.decode(command.data, v1.Command)
    assert isinstance(sent, v1.SubmitJobs) and [j.job_id for j in sent.jobs] == r.json()["ids"]
    assert (await gateway.post("/v1/jobs", json=SPEC, headers=alice)).status_code == 429
