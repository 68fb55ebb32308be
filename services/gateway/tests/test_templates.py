"""Templates: store a partial spec, submit from it with overrides, names and ownership checked."""

from __future__ import annotations

import pytest

from jobwire.contracts import v1

from .conftest import bearer

pytestmark = pytest.mark.integration


async def test_submit_from_a_template_with_overrides(gateway, mint, seed):
    alice = bearer(await mint("alice"))
    partial = {"image": "python:3.11", "env": {"A": "1"}, "resources": {"gpus": 1}, "expected_runtime": 60}
    r = await gateway.put("/v1/templates/train-gpu", json=partial, headers=alice)
    assert r.status_code == 200, r.text
    assert r.json()["owner"] == "alice"
    assert (await gateway.get("/v1/templates/train-gpu", headers=alice)).json()["spec"] == partial
    listed = (await gateway.get("/v1/templates", params={"prefix": "train"}, headers=alice)).json()["items"]
    assert [t["name"] for t in listed] == ["train-gpu"]

    body = {"template": "train-gpu", "command": ["python", "t.py"], "env": {"B": "2"}, "name": "run1"}
    r = await gateway.post("/v1/jobs", json=body, headers=alice)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["image"] == "python:3.11" and job["env"] == {"A": "1", "B": "2"}
    assert job["resources"]["gpus"] == 1 and job["command"] == ["python", "t.py"]
    sent = v1.decode((await seed.commands())[-1].data, v1.SubmitJob)
    assert sent.spec.env == {"A": "1", "B": "2"} and sent.spec.expected_runtime == 60

    missing = await gateway.post("/v1/jobs", json={"template": "nope"}, headers=alice)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(
        "application/problem+json"
    )


async def test_templates_are_validated_and_owned(gateway, mint):
    alice, bob = bearer(await mint("alice")), bearer(await mint("bob"))
    bad = await gateway.put("/v1/templates/t", json={"resources": {"gpus": -1}}, headers=alice)
    assert bad.status_code == 422
    assert (await gateway.put("/v1/templates/t", json={"wat": 1}, headers=alice)).status_code == 422
    for name in ("..", ".hidden", "a" * 129, "a%2Fb"):
        r = await gateway.put(f"/v1/templates/{name}", json={}, headers=alice)
        assert r.status_code in (400, 404), name
    assert (await gateway.put("/v1/templates/t", json={"image": "x"}, headers=alice)).status_code == 200
    assert (await gateway.put("/v1/templates/t", json={"image": "y"}, headers=bob)).status_code == 403
    assert (await gateway.delete("/v1/templates/t", headers=bob)).status_code == 403
    reader = bearer(await mint("carol", scopes=["jobs:read"]))
    assert (await gateway.put("/v1/templates/u", json={}, headers=reader)).status_code == 403
    assert (await gateway.delete("/v1/templates/t", headers=alice)).status_code == 204
    assert (await gateway.get("/v1/templates/t", headers=alice)).status_code == 404
