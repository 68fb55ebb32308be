"""Quotas through HTTP (429 + Retry-After, no over-admission under 50 parallel submits, nothing
published for a refused one) and synchronous submission with ``?wait=``."""

from __future__ import annotations

import asyncio

import pytest

from jobwire.contracts import v1

from .conftest import bearer

pytestmark = pytest.mark.integration
SPEC = {"command": ["true"], "expected_runtime": 1}


async def test_fifty_parallel_submits_admit_exactly_the_quota(gateway, mint, seed):
    alice = bearer(await mint("alice"))
    assert (await gateway.put("/v1/quotas/alice", json={"max_active": 5})).status_code == 200
    rs = await asyncio.gather(*(gateway.post("/v1/jobs", json=SPEC, headers=alice) for _ in range(50)))
    admitted = [r for r in rs if r.status_code in (201, 202)]
    refused = [r for r in rs if r.status_code == 429]
    assert len(admitted) == 5 and len(refused) == 45, sorted({r.status_code for r in rs})
    for r in refused:
        assert r.headers["content-type"].startswith("application/problem+json")
        assert int(r.headers["retry-after"]) > 0 and r.json()["limit"] == "max_active"
    assert len(await seed.commands()) == 5  # a refused submit published nothing
    # another user is not held back by alice's quota
    assert (await gateway.post("/v1/jobs", json=SPEC, headers=bearer(await mint("bob")))).status_code == 202


async def test_rate_and_gpu_quotas_and_defaults(gateway, mint):
    alice = bearer(await mint("alice"))
    await gateway.put("/v1/quotas/*", json={"max_per_minute": 2, "max_gpus": 1})
    gpu2 = {**SPEC, "resources": {"gpus": 2}}
    r = await gateway.post("/v1/jobs", json=gpu2, headers=alice)
    assert r.status_code == 429 and r.json()["limit"] == "max_gpus"
    for _ in range(2):
        assert (await gateway.post("/v1/jobs", json=SPEC, headers=alice)).status_code == 202
    r = await gateway.post("/v1/jobs", json=SPEC, headers=alice)
    assert r.status_code == 429 and r.json()["limit"] == "max_per_minute"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    # an Idempotency-Key replay is the same job, not a new admission
    first = await gateway.post(
        "/v1/jobs", json=SPEC, headers={**bearer(await mint("bob")), "idempotency-key": "k"}
    )
    again = await gateway.post(
        "/v1/jobs", json=SPEC, headers={**bearer(await mint("bob")), "idempotency-key": "k"}
    )
    assert again.json()["id"] == first.json()["id"]
    # ... also once the quota is full: the key's job was admitted the first time; a new key is refused
    bob = bearer(await mint("bob"))
    second = await gateway.post("/v1/jobs", json=SPEC, headers={**bob, "idempotency-key": "k2"})
    assert second.status_code == 202
    full = await gateway.post("/v1/jobs", json=SPEC, headers={**bob, "idempotency-key": "k3"})
    assert full.status_code == 429 and full.json()["limit"] == "max_per_minute"
    late = await gateway.post("/v1/jobs", json=SPEC, headers={**bob, "idempotency-key": "k"})
    assert late.status_code in (200, 201, 202) and late.json()["id"] == first.json()["id"], late.text
    quotas = (await gateway.get("/v1/quotas")).json()["items"]
    assert quotas == [{"owner": "*", "max_active": None, "max_per_minute": 2, "max_gpus": 1, "share": None}]
    assert (await gateway.delete("/v1/quotas/*")).status_code == 204


async def test_wait_answers_with_the_finished_job(gateway, seed):
    async def scheduler_finishes_it() -> None:
        while not (cmds := await seed.commands()):
            await asyncio.sleep(0.05)
        job_id = v1.decode(cmds[0].data, v1.SubmitJob).job_id
        await seed.job(job_id=job_id, state="succeeded", exit_code=0, attempt=1)
        await seed.event(job_id, "succeeded", previous="running", attempt=1)

    task = asyncio.create_task(scheduler_finishes_it())
    r = await gateway.post("/v1/jobs", params={"wait": 10}, json=SPEC)
    await task
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["state"] == "succeeded" and job["exit_code"] == 0
    assert f'</v1/jobs/{job["id"]}/logs>; rel="logs"' in r.headers["link"]
    assert 'rel="artifacts"' in r.headers["link"]


async def test_wait_gives_202_at_the_limit(gateway):
    r = await gateway.post("/v1/jobs", params={"wait": 0.5}, json=SPEC)
    assert r.status_code == 202 and r.json()["state"] == "queued"
    bad = await gateway.post("/v1/jobs", params={"wait": -1}, json=SPEC)
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")


async def test_a_share_is_set_shown_and_checked_and_leaves_the_default_limits_on(gateway, mint):
    """``{"share": 2}`` is a fair-share weight, not a limit: it is stored and listed, a share of 0 is
    refused (a 422 problem naming the field, as any bad quota body: it is decoded strictly), and alice
    with only a share set is still held to the ``*`` defaults."""
    alice = bearer(await mint("alice"))
    await gateway.put("/v1/quotas/*", json={"max_gpus": 1})
    r = await gateway.put("/v1/quotas/alice", json={"share": 2})
    assert r.status_code == 200 and r.json()["share"] == 2
    listed = {q["owner"]: q for q in (await gateway.get("/v1/quotas")).json()["items"]}
    assert listed["alice"]["share"] == 2 and listed["*"]["share"] is None
    bad = await gateway.put("/v1/quotas/alice", json={"share": 0})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    assert "share" in bad.text
    r = await gateway.post("/v1/jobs", json={**SPEC, "resources": {"gpus": 2}}, headers=alice)
    assert r.status_code == 429 and r.json()["limit"] == "max_gpus"
