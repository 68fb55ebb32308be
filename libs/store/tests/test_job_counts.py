"""``job_counts`` and its rollups stay exact: after submits, placements, transitions, owner changes,
deletes, purges and rolled-back transactions, the counts the API serves equal a full count of the
jobs, overall, per owner, per node and per owner on a node (on SQLite and PostgreSQL; the triggers
differ between them)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from jobwire.store import queries
from jobwire.store.models import JobCountRow, JobRow

pytestmark = pytest.mark.integration


async def _assert_exact(sessions: async_sessionmaker[AsyncSession]) -> Counter[tuple[str, str | None, str]]:
    async with sessions() as session:
        truth: Counter[tuple[str, str | None, str]] = Counter(
            {
                (owner, node, state): n
                for owner, node, state, n in await session.execute(
                    select(JobRow.owner, JobRow.node, JobRow.state, func.count()).group_by(
                        JobRow.owner, JobRow.node, JobRow.state
                    )
                )
            }
        )

        def expected(keep: Any) -> dict[str, int]:
            by_state: Counter[str] = Counter()
            for (owner, node, state), n in truth.items():
                if keep(owner, node):
                    by_state[state] += n
            return {s: n for s, n in by_state.items() if n}

        owners = {o for o, _, _ in truth} | {"nobody"}
        nodes = {n for _, n, _ in truth if n is not None} | {"nowhere"}
        assert await queries.count_jobs(session) == expected(lambda o, n: True)
        for owner in owners:
            assert await queries.count_jobs(session, owner=owner) == expected(lambda o, n: o == owner)
            for node in nodes:
                assert await queries.count_jobs(session, owner=owner, node=node) == expected(
                    lambda o, n: o == owner and n == node
                ), (owner, node)
        for node in nodes:
            assert await queries.count_jobs(session, node=node) == expected(lambda o, n: n == node)
        for owner, node in (("*", "*"), ("alice", "*"), ("*", "n1")):  # owner and node '*' are rollups
            assert await queries.count_jobs(session, owner=owner, node=None if node == "*" else node) == (
                {} if owner == "*" else expected(lambda o, n: o == owner)
            )
        exact = select(func.sum(JobCountRow.n)).where(JobCountRow.owner != "*", JobCountRow.node != "*")
        assert ((await session.execute(exact)).scalar_one() or 0) == sum(truth.values())
        await _assert_seconds_exact(session)
    return truth


async def _assert_seconds_exact(session: AsyncSession) -> None:
    """Each counts row's ``seconds`` (migration 0011) is the expected runtimes of its jobs summed, the
    rollups included: what a queued page's estimates read instead of the node's whole queue."""
    seconds: Counter[tuple[str, str, str]] = Counter()
    for owner, node, state, runtime in await session.execute(
        select(JobRow.owner, JobRow.node, JobRow.state, JobRow.expected_runtime)
    ):
        for key in ((owner, node or ""), (owner, "*"), ("*", node or ""), ("*", "*")):
            seconds[(*key, state)] += runtime or 0.0
    rows = await session.execute(
        select(JobCountRow.owner, JobCountRow.node, JobCountRow.state, JobCountRow.seconds)
    )
    stored = {(o, n, st): sec or 0.0 for o, n, st, sec in rows}
    for key in set(stored) | set(seconds):
        assert abs(stored.get(key, 0.0) - seconds.get(key, 0.0)) < 1e-6, key


async def test_counts_follow_every_kind_of_job_write(sessions, make_job, add):
    # submits: one at a time through the ORM (as the scheduler does), and many in one statement
    seeds = [make_job(owner=("alice", "bob")[i % 2], node=None, expected_runtime=10.0 * i) for i in range(6)]
    await add(*seeds)
    bulk = [
        make_job(owner="carol", node="n2", state="succeeded", expected_runtime=1.5).job for _ in range(25)
    ]
    async with sessions() as session, session.begin():
        await session.execute(
            insert(JobRow), [{c.key: getattr(j, c.key) for c in JobRow.__table__.columns} for j in bulk]
        )
    truth = await _assert_exact(sessions)
    assert truth[("alice", None, "queued")] == 3 and truth[("carol", "n2", "succeeded")] == 25

    # placement and transitions on loaded rows (the scheduler's unit of work)
    async with sessions() as session, session.begin():
        rows = {
            r.id: r for r in (await session.execute(select(JobRow).where(JobRow.owner != "carol"))).scalars()
        }
        for i, seed in enumerate(seeds):
            rows[seed.id].node = ("n1", "n2")[i % 2]
        rows[seeds[0].id].state = "starting"
        await session.flush()
        rows[seeds[0].id].state = "running"  # two changes of one row in one transaction
        rows[seeds[1].id].state = "held"
        rows[seeds[1].id].node = None
        rows[seeds[2].id].reason = "no counted column changes"
        rows[seeds[3].id].expected_runtime = 99.0  # counted in seconds only
    await _assert_exact(sessions)

    # one statement changing many rows, an owner change, and a write that changes nothing counted
    async with sessions() as session, session.begin():
        await session.execute(update(JobRow).where(JobRow.owner == "carol").values(state="failed"))
        await session.execute(update(JobRow).where(JobRow.id == seeds[3].id).values(owner="dave"))
        await session.execute(update(JobRow).where(JobRow.id == seeds[4].id).values(state="queued"))
    truth = await _assert_exact(sessions)
    assert truth[("carol", "n2", "failed")] == 25 and truth[("dave", "n2", "queued")] == 1

    # deletes: one row through the ORM, then a purge of every finished job in one statement
    async with sessions() as session, session.begin():
        await session.delete(await session.get(JobRow, seeds[5].id))
    await _assert_exact(sessions)
    async with sessions() as session, session.begin():
        purged = await session.execute(delete(JobRow).where(JobRow.state.in_(["failed", "succeeded"])))
    assert purged.rowcount == 25
    truth = await _assert_exact(sessions)
    assert sum(truth.values()) == 5

    # a transaction that rolls back takes its count changes with it
    async with sessions() as session, session.begin():
        session.add(make_job(owner="erin", node="n1").job)
        await session.execute(update(JobRow).values(state="cancelled"))
        await session.flush()
        assert await queries.count_jobs(session) == {"cancelled": 6}
        await session.rollback()
    assert sum((await _assert_exact(sessions)).values()) == 5
