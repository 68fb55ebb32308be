"""Tokens verified from memory: a request writes nothing to the database, token changes made through the
API reach every gateway replica within a second, and last uses reach the database through the scheduler."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import select

from jobwire.store.engine import SQLITE_BEGIN, make_engine
from jobwire.store.models import TokenRow

from .conftest import bearer

pytestmark = pytest.mark.integration
SPEC = {"command": ["true"], "expected_runtime": 1}


async def until(check, limit: float) -> float:  # type: ignore[no-untyped-def]
    """Seconds until ``await check()`` is true; fails past ``limit``."""
    t0 = time.perf_counter()
    while not await check():
        if time.perf_counter() - t0 > limit:
            raise AssertionError(f"not within {limit} s")
        await asyncio.sleep(0.02)
    return time.perf_counter() - t0


async def test_token_changes_reach_another_replica_within_a_second(serve_gateway, mint, scheduler):
    alice = await mint("alice")
    async with serve_gateway() as one, serve_gateway() as two:
        assert (await two.get("/v1/jobs", headers=bearer(alice))).status_code == 200
        made = await one.post("/v1/tokens", json={"owner": "carol"})
        assert made.status_code == 201, made.text
        carol = made.json()["secret"]
        # stored by the scheduler before the 201, announced to every replica right after
        assert await until(lambda: _ok(two, carol), 1.0) < 1.0

        token_id = (await one.get("/v1/tokens", params={"owner": "alice"})).json()["items"][0]["id"]
        revoked = await one.delete(f"/v1/tokens/{token_id}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        assert (await one.get("/v1/jobs", headers=bearer(alice))).status_code == 401  # at once here
        took = await until(lambda: _refused(two, alice), 1.0)
        assert took < 1.0
        assert "was revoked" in (await two.get("/v1/jobs", headers=bearer(alice))).json()["detail"]


async def _ok(client, secret: str) -> bool:  # type: ignore[no-untyped-def]
    return bool((await client.get("/v1/jobs", headers=bearer(secret))).status_code == 200)


async def _refused(client, secret: str) -> bool:  # type: ignore[no-untyped-def]
    return bool((await client.get("/v1/jobs", headers=bearer(secret))).status_code == 401)


async def test_requests_are_served_while_another_process_holds_the_write_lock(gateway, mint, db_url):
    """SQLite has one write lock: a request that wrote (a token's last use, an audit row, a quota
    admission) would wait up to busy_timeout (5 s) for it, then fail. None does."""
    alice = await mint("alice")
    assert (await gateway.get("/v1/jobs", headers=bearer(alice))).status_code == 200  # known, in memory
    assert (await gateway.put("/v1/quotas/alice", json={"max_active": 6})).status_code == 200
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            await conn.begin()  # SQLite's one write lock, held for the whole test
            t0 = time.perf_counter()
            for _ in range(5):
                assert (await gateway.get("/v1/jobs", headers=bearer(alice))).status_code == 200
                submitted = await gateway.post("/v1/jobs", json=SPEC, headers=bearer(alice))
                assert submitted.status_code == 202, submitted.text  # queued: no scheduler here
            sixth = await gateway.post("/v1/jobs", json=SPEC, headers=bearer(alice))
            assert sixth.status_code == 202  # the 6th: five queued, not stored, counted all the same
            refused = await gateway.post("/v1/jobs", json=SPEC, headers=bearer(alice))
            assert refused.status_code == 429 and refused.json()["limit"] == "max_active"
            assert (await gateway.post("/v1/jobs/nope/cancel", headers=bearer(alice))).status_code == 404
            took = time.perf_counter() - t0
            await conn.rollback()
    finally:
        await engine.dispose()
    # 6 submits wait 0.5 s each for an acceptance that cannot come; a blocked write would add 5 s
    assert took < 5.0, took


async def test_last_use_is_recorded_by_the_scheduler(gateway, mint, sessions, scheduler):
    alice = await mint("alice")
    assert (await gateway.get("/v1/jobs", headers=bearer(alice))).status_code == 200

    async def used() -> bool:
        async with sessions() as s:
            rows = (await s.execute(select(TokenRow.last_used_at).where(TokenRow.owner == "alice"))).all()
        return rows[0][0] is not None

    assert await until(used, 5.0) < 5.0
