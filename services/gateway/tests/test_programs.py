"""``GET /v1/programs`` and the submit check, on catalogs in the real ``jobwire_programs`` bucket."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import httpx
import pytest

from jobwire.contracts.v1 import codec
from jobwire.contracts.v1 import programs as pv
from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime.bus import Bus

pytestmark = [pytest.mark.integration, pytest.mark.backend("nats")]

PROBLEM = "application/problem+json"


async def publish(bus: Bus, node: str, cluster: str, *ids: str, description: str | None = None) -> None:
    """What an executor's catalog publisher puts under its node's key."""
    entries = [
        pv.ProgramEntry(name=i.split("@")[0], version=i.split("@")[1], description=description) for i in ids
    ]
    kv = await bus.js.key_value(sj.PROGRAM_BUCKET)
    await kv.put(
        node,
        codec.encode(pv.ProgramCatalog(node=node, cluster=cluster, at=datetime.now(UTC), programs=entries)),
    )


@pytest.fixture
async def catalogs(clean_bus: Bus) -> Bus:
    await clean_bus.js.purge_stream(f"KV_{sj.PROGRAM_BUCKET}")
    await publish(
        clean_bus, "hpc-a", "alpha", "NEWAVE@v28.16.4", "NEWAVE@v9", "DECOMP@31", description="hydro"
    )
    await publish(clean_bus, "hpc-b", "beta", "NEWAVE@v28.16.4", "NEWAVE@v10")
    return clean_bus


def ids(resp: httpx.Response) -> list[tuple[str, str]]:
    assert resp.status_code == 200, resp.text
    return [(p["id"], p["node"]) for p in resp.json()["items"]]


async def test_programs_are_listed_per_node_sorted_and_filtered(
    gateway: httpx.AsyncClient, catalogs: Bus
) -> None:
    r = await gateway.get("/v1/programs")
    assert ids(r) == [
        ("DECOMP@31", "hpc-a"),
        ("NEWAVE@v9", "hpc-a"),
        ("NEWAVE@v10", "hpc-b"),
        ("NEWAVE@v28.16.4", "hpc-a"),
        ("NEWAVE@v28.16.4", "hpc-b"),
    ]
    first = r.json()["items"][0]
    assert first["cluster"] == "alpha" and first["description"] == "hydro" and first["published_at"]
    assert first["name"] == "DECOMP" and first["version"] == "31"
    assert ids(await gateway.get("/v1/programs", params={"name": "NEWAVE", "version": "v28.16.4"})) == [
        ("NEWAVE@v28.16.4", "hpc-a"),
        ("NEWAVE@v28.16.4", "hpc-b"),
    ]
    assert ids(await gateway.get("/v1/programs", params={"name": "NEWAVE", "cluster": "beta"})) == [
        ("NEWAVE@v10", "hpc-b"),
        ("NEWAVE@v28.16.4", "hpc-b"),
    ]
    assert ids(await gateway.get("/v1/programs", params={"name": "GAMS"})) == []
    # a node that publishes again replaces its catalog
    await publish(catalogs, "hpc-b", "beta", "NEWAVE@v11")
    assert ids(await gateway.get("/v1/programs", params={"node": "hpc-b"})) == [("NEWAVE@v11", "hpc-b")]


async def test_listing_needs_the_jobs_read_scope(serve_gateway, mint, catalogs: Bus) -> None:  # type: ignore[no-untyped-def]
    reader = await mint("alice", scopes=["jobs:read"])
    nobody = await mint("bob", scopes=["jobs:submit"])
    async with serve_gateway(token=reader) as client:
        assert len(ids(await client.get("/v1/programs"))) == 5
    async with serve_gateway(token=nobody) as client:
        r = await client.get("/v1/programs")
        assert r.status_code == 403 and r.headers["content-type"] == PROBLEM, r.text


async def submits(bus: Bus) -> int:
    """Submit commands in JOBWIRE_CMD (audit records go there too)."""
    info = await bus.js.stream_info(sj.CMD_STREAM, subjects_filter=sj.cmd_subject("submit"))
    return sum((info.state.subjects or {}).values())


async def test_a_program_no_node_offers_is_refused_at_submit(
    gateway: httpx.AsyncClient, catalogs: Bus
) -> None:
    r = await gateway.post("/v1/jobs", json={"program": "NEWAVE@v99", "args": ["deck"]})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
    body = r.json()
    assert body["type"] == "urn:jobwire:problem:unknown-program" and body["path"] == "$.program"
    assert body["detail"] == (
        "program 'NEWAVE@v99' is offered by no node; known versions of NEWAVE: v9, v10, v28.16.4 "
        "(see GET /v1/programs)"
    )
    # offered, but not in the cluster the job asks for
    r = await gateway.post("/v1/jobs", json={"program": "NEWAVE@v9", "cluster": "beta"})
    assert r.status_code == 422, r.text
    assert "in cluster 'beta'; known versions of NEWAVE: v10, v28.16.4" in r.json()["detail"]
    r = await gateway.post("/v1/jobs", json={"program": "GAMS@1"})
    assert "programs offered: DECOMP, NEWAVE" in r.json()["detail"]
    assert await submits(catalogs) == 0  # nothing was queued


async def test_a_program_some_node_offers_is_queued(gateway: httpx.AsyncClient, catalogs: Bus) -> None:
    r = await gateway.post(
        "/v1/jobs", json={"program": "NEWAVE@v10", "args": ["a;b", "$(id)"], "cluster": "beta"}
    )
    assert r.status_code in (201, 202), r.text
    assert r.json()["program"] == "NEWAVE@v10" and r.json()["args"] == ["a;b", "$(id)"]
    assert await submits(catalogs) == 1


async def test_without_a_readable_bucket_listing_is_503_and_submits_are_not_blocked(
    gateway: httpx.AsyncClient, clean_bus: Bus
) -> None:
    await clean_bus.js.delete_key_value(sj.PROGRAM_BUCKET)
    try:
        r = await gateway.get("/v1/programs")
        assert r.status_code == 503 and r.headers["content-type"] == PROBLEM, r.text
        assert sj.PROGRAM_BUCKET in r.json()["detail"]
        r = await gateway.post("/v1/jobs", json={"program": "NEWAVE@v99"})
        assert r.status_code in (201, 202), r.text  # the executor refuses it with its own reason
    finally:
        from jobwire.runtime.bus import declare_streams

        await declare_streams(clean_bus)


async def test_the_openapi_schema_documents_the_route(gateway: httpx.AsyncClient) -> None:
    schema = (await gateway.get("/schema/openapi.json")).json()
    op = schema["paths"]["/v1/programs"]["get"]
    assert {p["name"] for p in op["parameters"]} == {"name", "version", "cluster", "node"}
    assert "503" in op["responses"]


async def test_the_cli_lists_programs_from_a_real_gateway(
    gateway: httpx.AsyncClient, catalogs: Bus, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobwire.client.cli import main

    url = str(gateway.base_url).rstrip("/")
    token = gateway.headers["Authorization"].removeprefix("Bearer ")
    base = ["--url", url, "--token", token]
    # the sync CLI runs in a thread: this event loop serves the gateway
    assert await asyncio.to_thread(main, ["programs", "--name", "NEWAVE", "--cluster", "alpha", *base]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["PROGRAM", "CLUSTER", "NODE", "DESCRIPTION"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["NEWAVE@v9", "alpha", "hpc-a"],
        ["NEWAVE@v28.16.4", "alpha", "hpc-a"],
    ]
    assert await asyncio.to_thread(main, ["programs", "--version", "v10", "--json", *base]) == 0
    assert [p["id"] for p in json.loads(capsys.readouterr().out)] == ["NEWAVE@v10"]
    assert await asyncio.to_thread(main, ["programs", "--name", "GAMS", *base]) == 0
    assert "no program matches" in capsys.readouterr().err
