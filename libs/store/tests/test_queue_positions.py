"""Queue positions on listed pages: right for every filter, page size and cursor, whether the page is a
stretch of one queue or spread thin over it, and paid once per node rather than once per row."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from jobwire.store import get_job, list_jobs, positions

pytestmark = pytest.mark.integration


@pytest.fixture
async def queues(make_job, add):
    """Two nodes' queues with mixed priorities and owners, running and held jobs among them."""
    seeds = []
    for i in range(90):
        node = "a" if i % 5 else "b"
        state = "running" if i % 11 == 0 else "held" if i % 13 == 0 else "queued"
        seeds.append(make_job(node=node, state=state, priority=(i * 7) % 3, owner=("ann", "bob")[i % 2]))
    seeds.append(make_job(node=None))  # queued, not placed yet: no position
    await add(*seeds)
    return seeds


def expected(seeds) -> dict[str, int | None]:
    """Jobs that start first under fair share (equal shares): the owner's own queued jobs of the node
    ahead of it (``priority desc, id asc``), plus as many of each other owner's there, at most all of
    theirs: worked out independently."""
    out: dict[str, int | None] = {s.id: None for s in seeds}
    for node in {s.job.node for s in seeds if s.job.node}:
        queued = [s.job for s in seeds if s.job.node == node and s.job.state == "queued"]
        owners = {j.owner for j in queued}
        for owner in owners:
            mine = sorted((j for j in queued if j.owner == owner), key=lambda j: (-j.priority, j.id))
            others = [sum(1 for j in queued if j.owner == o) for o in owners - {owner}]
            out.update({j.id: k + sum(min(n, k) for n in others) for k, j in enumerate(mine)})
    return out


async def walk(sessions, limit: int, **filters) -> dict[str, int | None]:
    seen: dict[str, int | None] = {}
    cursor = None
    while True:
        async with sessions() as session:
            page, cursor = await list_jobs(session, limit=limit, cursor=cursor, **filters)
        seen.update({j.id: j.queue_position for j in page})
        if cursor is None:
            return seen


@pytest.mark.parametrize("limit", [1, 7, 50, 1000])
@pytest.mark.parametrize(
    "filters", [{}, {"states": ["queued"]}, {"owner": "bob"}, {"node": "a", "states": ["queued", "held"]}]
)
async def test_listed_positions_match_the_queue(sessions, queues, limit, filters):
    want = expected(queues)
    seen = await walk(sessions, limit, **filters)
    assert seen, filters
    assert seen == {i: want[i] for i in seen}
    assert sorted(p for p in seen.values() if p is not None) != []


async def test_positions_counted_job_by_job_when_the_stretch_is_too_long(sessions, queues, monkeypatch):
    """A page spread thin over a long queue (bob's jobs only) reads no more than the limit of it."""
    monkeypatch.setattr(positions, "STRETCH_LIMIT", 3)
    want = expected(queues)
    for limit in (5, 50):
        seen = await walk(sessions, limit, owner="bob")
        assert seen == {i: want[i] for i in seen}


async def test_positions_agree_with_get_job_and_cost_one_statement(engine, sessions, make_job, add):
    """A ``state=queued`` page of 50 out of a 300-job queue of two priorities: what is ahead of each
    band's first job, the bands' stretches and the rest of the estimates are one statement, not a count
    per row (the old plan walked everything ahead of each row: 50 walks of up to 300 entries), nor a
    statement per band, nor one per kind of input (there were six)."""
    seeds = [make_job(node="n", priority=i % 2) for i in range(300)]
    await add(*seeds)
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        async with sessions() as session:
            page, _ = await list_jobs(session, states=["queued"], limit=50)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    selects = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]
    # the page with its transitions, and the positions with everything else the estimates read
    assert len(selects) == 2
    assert "count(" in selects[1].lower() and "job_counts" in selects[1]
    async with sessions() as session:
        single = {j.id: (await get_job(session, j.id)).queue_position for j in page}
    assert {j.id: j.queue_position for j in page} == single == {i: expected(seeds)[i] for i in single}
    # the newest 50 are the back of the queue: those of priority 0 last of all
    assert max(single.values()) == 299
