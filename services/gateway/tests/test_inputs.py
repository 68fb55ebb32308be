"""Named inputs: upload, list, download and delete with the right scopes, per-owner isolation, unsafe
names refused before anything is stored, and every change in the audit log."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from nats.js.errors import NotFoundError

from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime.bus import Bus

from .conftest import audit_log, bearer

pytestmark = pytest.mark.integration

OCTETS = {"content-type": "application/octet-stream"}


@pytest.fixture
async def inputs_bus(clean_bus: Bus) -> Bus:
    """The shared test server keeps objects between tests: start from an empty inputs bucket."""
    await clean_bus.js.purge_stream(f"OBJ_{sj.INPUT_BUCKET}")
    return clean_bus


async def stored(bus: Bus) -> list[str]:
    try:
        return sorted(i.name for i in await (await bus.inputs()).list(ignore_deletes=True))
    except NotFoundError:
        return []


def is_problem(r: httpx.Response, status: int) -> bool:
    return r.status_code == status and r.headers["content-type"].startswith("application/problem+json")


async def test_upload_list_download_replace_delete(gateway, mint, inputs_bus):
    alice = bearer(await mint("alice"))
    data = b"threshold: 3\n" + bytes(range(256)) * 4096  # 1 MiB + a bit: several object chunks
    r = await gateway.put("/v1/inputs/configs/train.yaml", content=data, headers={**alice, **OCTETS})
    assert r.status_code == 201, r.text
    info = r.json()
    assert (info["name"], info["owner"], info["size"]) == ("configs/train.yaml", "alice", len(data))
    assert info["digest"].startswith("SHA-256=") and info["updated"]
    await gateway.put("/v1/inputs/data.csv", content=b"a,b\n1,2\n", headers=alice)

    got = await gateway.get("/v1/inputs/configs/train.yaml", headers=alice)
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-length"] == str(len(data))
    assert hashlib.sha256(got.content).digest()

    listed = (await gateway.get("/v1/inputs", headers=alice)).json()["items"]
    assert [(i["name"], i["size"]) for i in listed] == [("configs/train.yaml", len(data)), ("data.csv", 8)]
    pre = (await gateway.get("/v1/inputs", params={"prefix": "configs/"}, headers=alice)).json()["items"]
    assert [i["name"] for i in pre] == ["configs/train.yaml"]

    r = await gateway.put("/v1/inputs/data.csv", content=b"new\n", headers=alice)
    assert r.status_code == 200 and r.json()["size"] == 4  # replaced, not created
    assert (await gateway.get("/v1/inputs/data.csv", headers=alice)).content == b"new\n"
    empty = await gateway.put("/v1/inputs/empty", content=b"", headers=alice)
    assert empty.status_code == 201 and empty.json()["size"] == 0
    assert (await gateway.get("/v1/inputs/empty", headers=alice)).content == b""

    assert (await gateway.delete("/v1/inputs/data.csv", headers=alice)).status_code == 204
    assert is_problem(await gateway.get("/v1/inputs/data.csv", headers=alice), 404)
    assert is_problem(await gateway.delete("/v1/inputs/data.csv", headers=alice), 404)
    names = [i["name"] for i in (await gateway.get("/v1/inputs", headers=alice)).json()["items"]]
    assert names == ["configs/train.yaml", "empty"]


async def test_scopes(gateway, mint, inputs_bus):
    reader = bearer(await mint("alice", scopes=["inputs:read"]))
    writer = bearer(await mint("alice", scopes=["inputs:write"]))
    jobs_only = bearer(await mint("alice", scopes=["jobs:submit", "jobs:read"]))
    assert (await gateway.put("/v1/inputs/x", content=b"1", headers=writer)).status_code == 201
    assert is_problem(await gateway.put("/v1/inputs/x", content=b"2", headers=reader), 403)
    assert is_problem(await gateway.delete("/v1/inputs/x", headers=reader), 403)
    assert is_problem(await gateway.get("/v1/inputs/x", headers=writer), 403)
    assert is_problem(await gateway.get("/v1/inputs", headers=jobs_only), 403)
    assert is_problem(await gateway.get("/v1/inputs/x", headers={"Authorization": "Bearer nope"}), 401)
    assert (await gateway.get("/v1/inputs/x", headers=reader)).content == b"1"


async def test_owners_are_isolated_and_admins_see_all(gateway, mint, inputs_bus):
    alice, bob = bearer(await mint("alice")), bearer(await mint("bob"))
    await gateway.put("/v1/inputs/cfg", content=b"alice's", headers=alice)
    assert is_problem(await gateway.get("/v1/inputs/cfg", headers=bob), 404)
    assert is_problem(await gateway.get("/v1/inputs/cfg", params={"owner": "alice"}, headers=bob), 404)
    assert is_problem(await gateway.delete("/v1/inputs/cfg", params={"owner": "alice"}, headers=bob), 404)
    r = await gateway.put("/v1/inputs/cfg", params={"owner": "alice"}, content=b"x", headers=bob)
    assert is_problem(r, 404)
    assert (await gateway.get("/v1/inputs", headers=bob)).json()["items"] == []
    assert (await gateway.get("/v1/inputs", params={"owner": "alice"}, headers=bob)).json()["items"] == []
    # bob's own input of the same name is another object
    await gateway.put("/v1/inputs/cfg", content=b"bob's", headers=bob)
    assert (await gateway.get("/v1/inputs/cfg", headers=alice)).content == b"alice's"
    assert (await gateway.get("/v1/inputs/cfg", headers=bob)).content == b"bob's"
    # an owner name with a '/' cannot reach into another owner's objects
    sneaky = bearer(await mint("alice/cfg"))
    assert (await gateway.get("/v1/inputs", headers=sneaky)).json()["items"] == []

    everyone = (await gateway.get("/v1/inputs")).json()["items"]  # the admin
    assert [(i["owner"], i["name"]) for i in everyone] == [("alice", "cfg"), ("bob", "cfg")]
    assert (await gateway.get("/v1/inputs/cfg", params={"owner": "bob"})).content == b"bob's"
    assert (await gateway.delete("/v1/inputs/cfg", params={"owner": "bob"})).status_code == 204
    assert await stored(inputs_bus) == [sj.input_object("alice", "cfg")]


@pytest.mark.parametrize(
    "raw",
    [
        "..%2Fx",
        "%2Fetc%2Fpasswd",
        "a%2F..%2F..%2Fb",
        "a%00b",
        "x" * 300,
        "a%2F%2Fb",
        ".hidden",
        "a%0A",
        "sp%20ace",
    ],
)
async def test_unsafe_names_are_refused_and_nothing_is_stored(gateway, mint, inputs_bus, raw):
    alice = bearer(await mint("alice"))
    r = await gateway.put(f"/v1/inputs/{raw}", content=b"evil", headers=alice)
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    assert await stored(inputs_bus) == []
    for method in ("GET", "DELETE"):
        r = await gateway.request(method, f"/v1/inputs/{raw}", headers=alice)
        assert 400 <= r.status_code < 500 and r.headers["content-type"].startswith("application/problem+json")


async def test_empty_name_and_size_limit(serve_gateway, mint, inputs_bus):
    alice = bearer(await mint("alice"))
    async with serve_gateway(max_input_size=1000, max_body_size=100) as client:
        # the JSON body limit does not apply to inputs; their own does
        assert (await client.put("/v1/inputs/ok", content=b"x" * 1000, headers=alice)).status_code == 201
        r = await client.put("/v1/inputs/big", content=b"x" * 1001, headers=alice)
        assert is_problem(r, 413), r.text

        async def chunked():  # no Content-Length: the limit is counted while streaming
            for _ in range(11):
                yield b"y" * 100

        r = await client.put("/v1/inputs/ok", content=chunked(), headers=alice)
        assert is_problem(r, 413), r.text
        assert (await client.get("/v1/inputs/ok", headers=alice)).content == b"x" * 1000  # left intact
        r = await client.put("/v1/inputs/", content=b"x", headers=alice)
        assert 400 <= r.status_code < 500
    assert await stored(inputs_bus) == [sj.input_object("alice", "ok")]


async def test_changes_are_audited(gateway, mint, inputs_bus, scheduler):
    alice = bearer(await mint("alice"))
    await gateway.put("/v1/inputs/cfg.yaml", content=b"1", headers=alice)
    await gateway.get("/v1/inputs/cfg.yaml", headers=alice)  # reads are not audited
    await gateway.delete("/v1/inputs/cfg.yaml", headers=alice)
    await gateway.put("/v1/inputs/..%2Fx", content=b"1", headers=alice)  # refusals are recorded too
    items = await audit_log(gateway, 3, actor="alice")
    seen = [(e["action"], e["method"], e["status"], e["target"]) for e in reversed(items)]
    assert seen[:3] == [
        ("inputs.put", "PUT", 201, "alice/cfg.yaml"),
        ("inputs.delete", "DELETE", 204, "alice/cfg.yaml"),
        ("inputs.put", "PUT", 400, seen[2][3]),
    ], seen
    assert len(seen) == 3
