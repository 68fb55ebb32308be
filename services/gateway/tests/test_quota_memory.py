"""The gateway keeps every owner's quota in memory: a quota set through one replica applies there to the
next submit and on another replica sharing the database within about a second, and a submit by an owner
without limits reads nothing from the database."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from jobwire.gateway.settings import GatewaySettings
from tests.support.nodes import store_node

from .conftest import bearer

pytestmark = pytest.mark.integration
SPEC = {"command": ["true"], "expected_runtime": 1}
#: the replicas here poll the table every quarter second; the bound leaves more than a second for a loaded
#: machine's submits (the final CI run, at load 9 on 2 cores, took 2.4 s against a one-second poll)
REFRESH = 0.25
WITHIN = 1.5


async def _refused_within(client, headers, limit: str | None) -> float:  # type: ignore[no-untyped-def]
    """Submit until the answer matches ``limit`` (a 429 naming it, or None: admitted); seconds taken."""
    start = time.monotonic()
    while True:
        r = await client.post("/v1/jobs", json=SPEC, headers=headers)
        got = r.json().get("limit") if r.status_code == 429 else None
        assert r.status_code in (202, 429), r.text
        if got == limit:
            return time.monotonic() - start
        assert time.monotonic() - start < 5, f"still {r.status_code} {r.text} after 5 s"
        await asyncio.sleep(0.05)


def test_replicas_poll_quotas_once_a_second_by_default() -> None:
    assert GatewaySettings.quota_refresh <= 1.0


async def test_a_quota_applies_at_once_here_and_soon_on_another_replica(serve_gateway, mint):
    alice = bearer(await mint("alice"))
    async with serve_gateway(quota_refresh=REFRESH) as gateway, serve_gateway(quota_refresh=REFRESH) as other:
        assert (await other.post("/v1/jobs", json=SPEC, headers=alice)).status_code == 202  # no quota yet
        assert (await gateway.put("/v1/quotas/alice", json={"max_active": 0})).status_code == 200
        r = await gateway.post("/v1/jobs", json=SPEC, headers=alice)  # the replica that stored it: at once
        assert r.status_code == 429 and r.json()["limit"] == "max_active", r.text
        assert int(r.headers["retry-after"]) > 0
        assert await _refused_within(other, alice, "max_active") < WITHIN
        # and the same for a removed quota
        assert (await gateway.delete("/v1/quotas/alice")).status_code == 204
        assert (await gateway.post("/v1/jobs", json=SPEC, headers=alice)).status_code == 202
        assert await _refused_within(other, alice, None) < WITHIN
        # a default set on the other replica reaches this one, and alice (no row of her own) is held to it
        assert (await other.put("/v1/quotas/*", json={"max_active": 0})).status_code == 200
        assert (await other.post("/v1/jobs", json=SPEC, headers=alice)).status_code == 429
        assert await _refused_within(gateway, alice, "max_active") < WITHIN


async def test_a_submit_by_an_owner_without_limits_makes_no_database_query(serve_gateway, mint, sessions):
    alice = bearer(await mint("alice"))
    # a cluster with a node, as every real one: with none known the gateway reads the nodes table
    # before it accepts (a new stack's nodes may have been stored since its last read)
    await store_node(sessions, "loc-a")
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    # no background re-read during the count: what is counted is what the submits cost
    quiet = {"quota_refresh": 3600, "nodes_refresh": 3600, "token_reload_interval": 3600}
    async with serve_gateway(**quiet) as client:
        assert (await client.put("/v1/quotas/bob", json={"max_active": 5})).status_code == 200
        event.listen(Engine, "before_cursor_execute", seen)
        try:
            for _ in range(5):
                r = await client.post("/v1/jobs", json=SPEC, headers=alice)
                assert r.status_code == 202, r.text
        finally:
            event.remove(Engine, "before_cursor_execute", seen)
        assert statements == []
        # an owner with a limit is counted (its jobs are read), but its limits still come from memory
        bob = bearer(await mint("bob"))
        event.listen(Engine, "before_cursor_execute", seen)
        try:
            assert (await client.post("/v1/jobs", json=SPEC, headers=bob)).status_code == 202
        finally:
            event.remove(Engine, "before_cursor_execute", seen)
        assert statements and not [s for s in statements if "quotas" in s]
