"""GET /v1/jobs/{id}/artifacts and the download of one artifact from the object store."""

from __future__ import annotations

import hashlib
import os

import pytest

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj

pytestmark = pytest.mark.integration


async def test_list_and_download(gateway, seed):
    payload = os.urandom(300_000)  # several object-store chunks
    report = b"accuracy 0.93\n"
    artifacts = [
        v1.Artifact(name="model.bin", size=len(payload), digest=hashlib.sha256(payload).hexdigest()),
        v1.Artifact(name="out/report.txt", size=len(report)),
    ]
    job_id = await seed.job(state="succeeded", attempt=1, artifacts=artifacts)
    store = await seed.bus.artifacts()
    await store.put(sj.artifact_object(job_id, "model.bin"), payload)
    await store.put(sj.artifact_object(job_id, "out/report.txt"), report)

    listed = await gateway.get(f"/v1/jobs/{job_id}/artifacts")
    assert listed.status_code == 200
    assert [a["name"] for a in listed.json()["items"]] == ["model.bin", "out/report.txt"]

    r = await gateway.get(f"/v1/jobs/{job_id}/artifacts/model.bin")
    assert r.status_code == 200
    assert r.content == payload
    assert r.headers["content-length"] == str(len(payload))
    assert r.headers["content-type"] == "application/octet-stream"
    r = await gateway.get(f"/v1/jobs/{job_id}/artifacts/out/report.txt")
    assert r.content == report
    assert r.headers["content-type"].startswith("text/plain")
    assert "report.txt" in r.headers["content-disposition"]


async def test_empty_artifact(gateway, seed):
    job_id = await seed.job(state="succeeded")
    await (await seed.bus.artifacts()).put(sj.artifact_object(job_id, "empty.log"), b"")
    r = await gateway.get(f"/v1/jobs/{job_id}/artifacts/empty.log")
    assert r.status_code == 200
    assert r.content == b""


async def test_missing_artifact_and_job_are_404(gateway, seed):
    job_id = await seed.job(state="succeeded")
    r = await gateway.get(f"/v1/jobs/{job_id}/artifacts/nope.txt")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == "urn:jobwire:problem:artifact-not-found"
    assert (await gateway.get(f"/v1/jobs/{v1.new_job_id()}/artifacts")).status_code == 404
    assert (await gateway.get(f"/v1/jobs/{v1.new_job_id()}/artifacts/x")).status_code == 404
