"""Tokens (hash only, lookup, revoke, expiry), audit rows and atomic quota admission, on both databases."""

from __future__ import annotations

import asyncio
import stat
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from jobwire.contracts import v1
from jobwire.store import audit, bootstrap, migrate, quotas, tokens
from jobwire.store.models import TokenRow

pytestmark = pytest.mark.integration


async def test_a_token_is_stored_as_a_hash_and_found_by_its_secret(sessions):
    async with sessions() as s, s.begin():
        new = await tokens.create_token(s, "alice", days=30, created_by="root")
    assert new.secret.startswith("jw_") and len(new.secret) >= 43
    async with sessions() as s:
        rows = (await s.execute(select(TokenRow))).scalars().all()
        assert [r.secret_hash for r in rows] == [tokens.hash_secret(new.secret)]
        dump = "\n".join(str(v) for r in rows for v in r.__dict__.values())
        assert new.secret not in dump
        found = await tokens.find_token(s, new.secret)
        assert found is not None and found.owner == "alice" and tokens.is_usable(found)
        assert "admin" not in found.scopes
        assert await tokens.find_token(s, new.secret + "x") is None
        assert await tokens.find_token(s, "jw_short") is None


async def test_revoked_and_expired_tokens_are_not_usable(sessions):
    async with sessions() as s, s.begin():
        new = await tokens.create_token(s, "bob", scopes=["jobs:read"], days=1)
        assert await tokens.has_usable_token(s)
        await tokens.revoke_token(s, new.token.id)
        assert not await tokens.has_usable_token(s)
    async with sessions() as s:
        found = await tokens.find_token(s, new.secret)
        assert found is not None and found.revoked_at is not None and not tokens.is_usable(found)
        assert not tokens.is_usable(found.__copy__(), found.created_at + timedelta(days=2))
    with pytest.raises(ValueError, match="unknown scope"):
        tokens.check_scopes(["jobs:everything"])


async def test_audit_rows_list_newest_first(sessions):
    async with sessions() as s, s.begin():
        for i in range(3):
            await audit.record(
                s,
                audit.NewEntry(
                    actor="alice",
                    action="jobs.submit",
                    method="POST",
                    path="/v1/jobs",
                    status=201,
                    target=f"j{i}",
                    address="127.0.0.1",
                ),
            )
    async with sessions() as s:
        entries = await audit.list_entries(s, actor="alice", limit=2)
    assert [e.target for e in entries] == ["j2", "j1"]


def _submitted(job: str, status: int, request: str | None = "") -> v1.AuditRecord:
    return v1.AuditRecord(
        at=datetime.now(UTC),
        actor="alice",
        action="jobs.submit",
        method="POST",
        path="/v1/jobs",
        status=status,
        target=job,
        request=job if request == "" else request,
    )


async def test_a_submits_record_is_one_row_whichever_copy_comes_first_and_how_often(sessions):
    """The record a submit command carried (201) and the one the gateway sent when it answered 202
    name one row, in either order and redelivered; unkeyed records are each a row."""
    async with sessions() as s, s.begin():
        await audit.insert_records(s, [_submitted("j1", 201)], carried=True)  # stored with the job
        await audit.insert_records(s, [_submitted("j1", 201)], carried=True)  # redelivered command
        await audit.insert_records(s, [_submitted("j1", 202)])  # the gateway answered 202
        await audit.insert_records(s, [_submitted("j2", 202)])  # the gateway's record came first
        await audit.insert_records(s, [_submitted("j2", 201)], carried=True)
        await audit.insert_records(s, [_submitted("j3", 201)], carried=True)  # answered 201: only this
        plain = _submitted("x", 401, request=None)
        await audit.insert_records(s, [plain, plain])
    async with sessions() as s:
        entries = await audit.list_entries(s, action="jobs.submit")
    assert sorted((e.target, e.status) for e in entries) == [
        ("j1", 202),
        ("j2", 202),
        ("j3", 201),
        ("x", 401),
        ("x", 401),
    ]


async def test_fifty_concurrent_admissions_never_over_admit(engine):
    await quotas.set_quota(engine, quotas.Quota(owner="alice", max_active=7))
    await quotas.set_quota(engine, quotas.Quota(max_per_minute=1000))

    async def one() -> str:
        try:
            await quotas.admit(engine, "alice", v1.new_job_id())
        except quotas.QuotaExceeded as e:
            return f"{e.limit}:{e.retry_after > 0}"
        return "admitted"

    results = await asyncio.gather(*(one() for _ in range(50)))
    assert sorted(set(results)) == ["admitted", "max_active:True"]
    assert results.count("admitted") == 7
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM admissions"))).scalar_one() == 7
    # another owner falls under the defaults, which have no active limit
    await quotas.admit(engine, "bob", v1.new_job_id())


async def test_a_stored_job_counts_once(engine, make_job, add):
    await quotas.set_quota(engine, quotas.Quota(owner="alice", max_active=2))
    seed = make_job(owner="alice")
    await quotas.admit(engine, "alice", seed.id)
    await add(seed)  # the scheduler stored the admitted job: its row counts now, not the admission
    await quotas.admit(engine, "alice", v1.new_job_id())
    with pytest.raises(quotas.QuotaExceeded):
        await quotas.admit(engine, "alice", v1.new_job_id())


def test_the_local_admin_token_is_0600_and_reused(database_url, tmp_path):
    asyncio.run(migrate(database_url))
    path = tmp_path / "cfg" / "token"
    secret, created = bootstrap.local_admin_token(database_url, "me", path)
    assert created and path.read_text().strip() == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert bootstrap.local_admin_token(database_url, "me", path) == (secret, False)


async def test_rate_and_gpu_limits_and_release(engine):
    await quotas.set_quota(engine, quotas.Quota(owner="carol", max_per_minute=2, max_gpus=4))
    first = v1.new_job_id()
    await quotas.admit(engine, "carol", first, gpus=3)
    with pytest.raises(quotas.QuotaExceeded, match="GPUs"):
        await quotas.admit(engine, "carol", v1.new_job_id(), gpus=2)
    await quotas.admit(engine, "carol", v1.new_job_id(), gpus=1)
    with pytest.raises(quotas.QuotaExceeded) as exc:
        await quotas.admit(engine, "carol", v1.new_job_id())
    assert exc.value.limit == "max_per_minute" and 1 <= exc.value.retry_after <= 60
    await quotas.release(engine, first)
    assert [q.owner for q in await quotas.get_quotas(engine)] == ["carol"]
    assert await quotas.delete_quota(engine, "carol")
