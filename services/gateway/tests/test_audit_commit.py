"""Audit rows of concurrent requests share commits, and each request waits for its own row."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from jobwire.gateway.auth.audit import GroupCommit
from jobwire.store import audit
from jobwire.store.models import AuditRow

pytestmark = pytest.mark.integration


class CountingRes:
    """What GroupCommit uses of the gateway's resources: write transactions, here counted."""

    def __init__(self, sessions, fail: bool = False) -> None:  # type: ignore[no-untyped-def]
        self.sessions = sessions
        self.commits = 0
        self.fail = fail

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[object]:
        async with self.sessions() as session, session.begin():
            if self.fail:
                raise RuntimeError("the database is gone")
            yield session
        self.commits += 1


def entry(i: int) -> audit.NewEntry:
    return audit.NewEntry(
        actor="alice", action="jobs.submit", method="POST", path="/v1/jobs", status=201, target=f"j{i}"
    )


async def rows(sessions) -> int:  # type: ignore[no-untyped-def]
    async with sessions() as s:
        return int((await s.execute(select(func.count()).select_from(AuditRow))).scalar_one())


async def test_fifty_concurrent_rows_share_a_few_commits_and_each_is_stored_when_awaited(sessions):
    res = CountingRes(sessions)
    writer = GroupCommit(res)  # type: ignore[arg-type]

    async def write(i: int) -> int:
        await writer.write(entry(i))
        return await rows(sessions)  # this request's row is already committed

    seen = await asyncio.gather(*(write(i) for i in range(50)))
    assert await rows(sessions) == 50
    assert all(n >= 1 for n in seen)
    assert res.commits <= 3, res.commits  # the first row alone, the rest in one or two batches
    async with sessions() as s:
        targets = set((await s.execute(select(AuditRow.target))).scalars())
    assert targets == {f"j{i}" for i in range(50)}


async def test_a_failed_commit_reaches_every_waiter(sessions):
    writer = GroupCommit(CountingRes(sessions, fail=True))  # type: ignore[arg-type]
    results = await asyncio.gather(*(writer.write(entry(i)) for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await rows(sessions) == 0
