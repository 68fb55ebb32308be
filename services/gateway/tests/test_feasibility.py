"""POST /v1/jobs refuses a job no registered node could ever run (422 naming the resource and the largest
offer), from the gateway's in-memory view of the nodes: stored ones and ones only heard heart-beating."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from tests.support import nodes as stored_nodes

from .test_submit import assert_problem

pytestmark = pytest.mark.integration


async def store_node(sessions, name: str, backend: str = "local", state: str = "up", **cap) -> None:  # type: ignore[no-untyped-def]
    """What the scheduler stores when a node registers (and marks when it stops answering)."""
    capacity = v1.NodeCapacity(slots=cap.pop("slots", 2), cpus=cap.pop("cpus", 4), **cap)
    await stored_nodes.store_node(sessions, name, backend, capacity, state=state)


@pytest.fixture
async def nodes(sessions):  # type: ignore[no-untyped-def]
    await store_node(sessions, "loc-a", memory=8 << 30)
    await store_node(sessions, "loc-b", state="down", cpus=16, memory=2 << 30)
    await store_node(sessions, "dock-a", backend="docker", memory=4 << 30)


@pytest.mark.parametrize(
    ("spec", "detail", "path"),
    [
        ({"resources": {"gpus": 1}}, "needs 1 GPU; no node has GPUs", "$.resources.gpus"),
        (
            {"backend": "docker", "resources": {"gpus": 1}},
            "needs 1 GPU; no node of backend docker has GPUs",
            "$.resources.gpus",
        ),
        ({"resources": {"nodes": 3}}, "needs 3 nodes of one backend that runs gangs", "$.resources.nodes"),
        ({"node": "dock-zz"}, "no node named 'dock-zz'; known: dock-a, loc-a, loc-b", "$.node"),
        (
            {"resources": {"memory": "64G"}},
            "needs 64G of memory; the most any node has is 8G (loc-a)",
            "$.resources.memory",
        ),
        ({"resources": {"cpus": 32}}, "the most any node has is 16 (loc-b)", "$.resources.cpus"),
        ({"backend": "local", "image": "python:3.11"}, "no node of backend local runs images", "$.image"),
        ({"backend": "slurm"}, "backends offered: docker, local", "$.backend"),
    ],
)
async def test_a_job_no_node_could_ever_run_is_refused(nodes, gateway, seed, spec, detail, path):
    r = await gateway.post("/v1/jobs", json={"command": ["true"], **spec})
    problem = assert_problem(r, 422, detail_has=detail, path=path)
    assert problem["type"] == "urn:jobwire:problem:no-node-fits"
    assert await seed.commands() == []  # nothing queued


async def test_memory_beyond_any_machine_is_refused_as_invalid(nodes, gateway, seed):
    for memory in ("1e35", "100000000000000000000000000000000000"):
        r = await gateway.post(
            "/v1/jobs",
            content=b'{"command":["true"],"resources":{"memory":%s}}' % memory.encode(),
            headers={"content-type": "application/json"},
        )
        assert_problem(r, 422)
    assert await seed.commands() == []


@pytest.mark.parametrize(
    "spec",
    [
        {"node": "loc-b"},  # down, but registered: it waits for it
        {"resources": {"cpus": 16}},  # only the down node has 16 CPUs
        {"image": "python:3.11", "resources": {"memory": "4G"}},
        {"backend": "docker"},
    ],
)
async def test_a_job_some_registered_node_fits_is_accepted(nodes, gateway, seed, spec):
    r = await gateway.post("/v1/jobs", json={"command": ["true"], **spec})
    assert r.status_code == 202, r.text  # no scheduler here: durably queued
    assert len(await seed.commands()) == 1


async def test_with_no_node_registered_nothing_is_refused_by_capacity(gateway, seed):
    r = await gateway.post("/v1/jobs", json={"command": ["true"], "resources": {"gpus": 2}})
    assert r.status_code == 202, r.text
    r = await gateway.post("/v1/jobs", json={"command": ["true"], "resources": {"nodes": 2}})
    assert r.status_code == 202, r.text  # a gang waits for its nodes like any job


async def test_a_node_heard_heart_beating_counts_before_it_is_stored(nodes, gateway, seed, clean_bus):
    pinned = {"command": ["true"], "node": "gpu-new", "resources": {"gpus": 1}}
    assert_problem(await gateway.post("/v1/jobs", json=pinned), 422, path="$.node")
    beat = v1.NodeHeartbeat(
        node="gpu-new",
        backend="ssh",
        capacity=v1.NodeCapacity(slots=4, cpus=2, gpus=4),
        at=datetime.now(UTC),
        instance="i1",
    )
    await clean_bus.publish_core(sj.heartbeat_subject("gpu-new"), beat)
    await clean_bus.nc.flush()

    async def accepted() -> bool:
        return (await gateway.post("/v1/jobs", json=pinned)).status_code == 202

    for _ in range(50):
        if await accepted():
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the heart-beating node was never taken into account")


async def test_a_node_stored_after_the_gateway_started_is_seen_before_refusing(serve_gateway, seed, sessions):
    await store_node(sessions, "small")
    async with serve_gateway(nodes_refresh=3600) as client:
        wanted = {"command": ["true"], "resources": {"gpus": 2}}
        assert_problem(await client.post("/v1/jobs", json=wanted), 422, path="$.resources.gpus")
        await store_node(sessions, "late", gpus=2)
        # at once: a node the scheduler stored before the submit arrived is seen, however young the
        # snapshot (a one-second re-check age once refused the first submits after `make run`)
        r = await client.post("/v1/jobs", json=wanted)
        assert r.status_code == 202, r.text


async def test_the_first_nodes_stored_after_the_gateway_started_are_seen_before_accepting(
    serve_gateway, seed, sessions
):
    """With no node known at its start, the gateway still reads the table before it accepts a job that
    the nodes stored since could never run (on a stack's start it read the table a moment before the
    scheduler stored its nodes, and accepted a GPU job that then waited for ever)."""
    async with serve_gateway(nodes_refresh=3600) as client:
        await store_node(sessions, "first")
        wanted = {"command": ["true"], "resources": {"gpus": 2}}
        assert_problem(await client.post("/v1/jobs", json=wanted), 422, path="$.resources.gpus")
        r = await client.post("/v1/jobs", json={"command": ["true"]})
        assert r.status_code == 202, r.text


@contextlib.contextmanager
def statements_run() -> Iterator[list[str]]:
    """The SQL every engine of this process runs while the block does."""
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(Engine, "before_cursor_execute", seen)


async def test_no_node_heard_for_a_node_timeout_is_believed_without_a_read(serve_gateway, seed, monkeypatch):
    """An empty cluster's submits read no node from the database once the gateway has followed the
    heartbeats long enough that a live node would have been heard (here: at once)."""
    from jobwire.gateway.nodes import snapshot

    monkeypatch.setattr(snapshot, "SILENCE_PROVES_EMPTY", 0.0)
    async with serve_gateway(nodes_refresh=3600) as client:
        with statements_run() as statements:
            for _ in range(5):
                r = await client.post("/v1/jobs", json={"command": ["true"], "resources": {"gpus": 1}})
                assert r.status_code == 202, r.text
    assert not [s for s in statements if "FROM nodes" in s]


async def test_refusals_arriving_together_share_one_read_of_the_nodes(nodes, serve_gateway, seed):
    async with serve_gateway(nodes_refresh=3600) as client:
        with statements_run() as statements:
            infeasible = {"command": ["true"], "resources": {"gpus": 64}}
            answers = await asyncio.gather(*(client.post("/v1/jobs", json=infeasible) for _ in range(20)))
    for r in answers:
        assert_problem(r, 422, path="$.resources.gpus")
    reads = [s for s in statements if "FROM nodes" in s]
    assert 1 <= len(reads) <= 3, f"{len(reads)} reads of the nodes table for 20 refusals"


async def test_accepted_submits_read_no_node_from_the_database(nodes, serve_gateway, seed):
    async with serve_gateway(nodes_refresh=3600) as client:
        with statements_run() as statements:
            for _ in range(5):
                r = await client.post("/v1/jobs", json={"command": ["true"], "backend": "docker"})
                assert r.status_code == 202, r.text
    assert not [s for s in statements if "FROM nodes" in s]


async def test_a_job_only_another_owners_node_could_run_is_refused_at_submit(
    serve_gateway, sessions, mint, seed
):
    """``make run``'s executor runs jobs as its own account for the owner of its token only: another
    owner's job is a 422 naming that node and what to configure, not a 201 that then fails."""
    await store_node(sessions, "loc-root", owner="root")
    bob = await mint("bob")
    async with serve_gateway(token=bob, nodes_refresh=3600) as client:
        job = {"command": ["true"]}
        body = assert_problem(await client.post("/v1/jobs", json=job), 422, path="$")
        assert body["detail"].startswith("no node runs jobs of owner 'bob': loc-root (root) run only")
        assert "JOBWIRE_EXECUTOR_RUN_AS=owner" in body["detail"]
        batch = await client.post("/v1/jobs:batch", json={"jobs": [job]})
        assert_problem(batch, 422, path="$.jobs[0]")
        await store_node(sessions, "loc-all")  # a node that runs every owner's jobs, each as its own account
        assert (await client.post("/v1/jobs", json=job)).status_code == 202
    async with serve_gateway(nodes_refresh=3600) as client:  # root's own jobs were never refused
        pinned = await client.post("/v1/jobs", json={"command": ["true"], "node": "loc-root"})
        assert pinned.status_code == 202, pinned.text
