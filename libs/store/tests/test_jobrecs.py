"""The scheduler's bulk writes: what one batch does to its jobs reaches the tables exactly, on SQLite and
PostgreSQL: new jobs with their final values, only changed columns updated, transitions, labels, outbox
ids in insert order, and deletes with their dependent rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from jobwire.store import jobrecs, queries
from jobwire.store.jobrecs import JobRec, OutboxMsg, Writes
from jobwire.store.models import JobLabelRow, JobRow, OutboxRow, TransitionRow

pytestmark = pytest.mark.integration
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rec(n: int, **kw: object) -> JobRec:
    values: dict[str, object] = {
        "id": f"01900000-0000-7000-8000-{n:012d}",
        "owner": "alice",
        "state": "queued",
        "spec": b"{}",
        "created_at": T0 + timedelta(seconds=n),
    }
    values.update(kw)
    return JobRec(**values)


def transition(r: JobRec, state: str) -> dict[str, object]:
    return {"job_id": r.id, "state": state, "at": T0, "reason": None, "attempt": r.attempt}


async def test_one_batch_of_bulk_writes_lands_exactly(sessions: async_sessionmaker[AsyncSession]) -> None:
    # batch 1: 600 new jobs (more than one IN chunk), one changed before it was stored
    new = [rec(n) for n in range(600)]
    new[0].node, new[0].state, new[0].attempt = "n1", "starting", 1
    outbox = [OutboxMsg(f"s.{n}", b"x", f"m{n}", None) for n in range(300)]
    async with sessions() as s, s.begin():
        await jobrecs.write(
            s,
            Writes(
                new=new,
                touched=new,
                transitions=[transition(r, "queued") for r in new],
                labels=[{"job_id": new[1].id, "key": "team", "value": "red"}],
                outbox=outbox,
                deleted=[],
            ),
        )
    ids = [m.id for m in outbox]
    assert ids == sorted(ids) and len(set(ids)) == 300  # one id each, in insert order
    async with sessions() as s:
        stored = dict((await s.execute(select(OutboxRow.id, OutboxRow.subject))).all())
        assert all(stored[m.id] == m.subject for m in outbox)
        loaded = {r.id: r for r in await jobrecs.load(s, [r.id for r in new] + ["missing"])}
    assert len(loaded) == 600
    first = loaded[new[0].id]
    assert (first.state, first.node, first.attempt, first.created_at) == ("starting", "n1", 1, T0)
    assert not first.changed()

    # batch 2: two jobs change different columns, one is deleted; untouched columns keep their values
    a, b, gone = loaded[new[0].id], loaded[new[1].id], loaded[new[2].id]
    a.state, a.exit_code = "succeeded", 0
    b.reason = "waiting"
    async with sessions() as s, s.begin():
        # another writer's value in a column the batch did not change must survive its UPDATE
        await s.execute(JobRow.__table__.update().where(JobRow.id == a.id).values(reason="kept"))
        await jobrecs.write(
            s,
            Writes(
                new=[],
                touched=[a, b, loaded[new[3].id]],
                transitions=[transition(a, "succeeded")],
                labels=[],
                outbox=[],
                deleted=[gone.id],
            ),
        )
    async with sessions() as s:
        row_a, row_b = await s.get(JobRow, a.id), await s.get(JobRow, b.id)
        assert row_a is not None and row_b is not None
        assert (row_a.state, row_a.exit_code, row_a.reason, row_a.node) == ("succeeded", 0, "kept", "n1")
        assert (row_b.state, row_b.reason) == ("queued", "waiting")
        assert await s.get(JobRow, gone.id) is None
        count = select(func.count()).select_from(TransitionRow)
        assert await s.scalar(count.where(TransitionRow.job_id == a.id)) == 2
        assert await s.scalar(count.where(TransitionRow.job_id == gone.id)) == 0
        assert await s.scalar(select(func.count()).select_from(JobLabelRow)) == 1
        counts = await queries.count_jobs(s)
    assert counts == {"queued": 598, "succeeded": 1}  # the count triggers saw every bulk write
