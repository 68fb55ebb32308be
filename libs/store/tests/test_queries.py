import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import event

from jobwire.contracts import v1
from jobwire.store import InvalidCursor, get_job, list_jobs, list_nodes
from jobwire.store.models import NodeRow, TransitionRow

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def node_row(name, *, slots=1, state="up", labels=None, gpus=None):
    return NodeRow(
        name=name,
        backend="local",
        state=state,
        capacity=v1.encode(v1.NodeCapacity(slots=slots, cpus=4.0)),
        labels=v1.encode(labels) if labels is not None else None,
        gpus=v1.encode(gpus) if gpus is not None else None,
        registered_at=NOW - timedelta(hours=1),
        last_heartbeat=NOW,
    )


async def test_get_job_has_transitions_labels_documents_and_queue_position(sessions, make_job, add):
    a_low = make_job(node="a", priority=0)
    a_high = make_job(node="a", priority=5)
    a_low2 = make_job(node="a", priority=0)
    a_running = make_job(
        node="a",
        state="running",
        states=["queued", "starting", "running"],
        labels={"team": "ml", "gpu": "a100"},
        usage=v1.encode(v1.Usage(cpu_seconds=1.5, max_rss_bytes=1024)),
        artifacts=v1.encode([v1.Artifact(name="out.txt", size=3)]),
        ports=v1.encode({"8080/tcp": "127.0.0.1:32768"}),
        details=v1.encode({"container": "abc"}),
    )
    a_held = make_job(node="a", state="held", priority=9)
    b_low = make_job(node="b", priority=0)
    b_high = make_job(node="b", priority=1)
    unplaced = make_job(node=None)
    await add(a_low, a_high, a_low2, a_running, a_held, b_low, b_high, unplaced)

    async with sessions() as session:
        positions = {
            s.id: (await get_job(session, s.id)).queue_position
            for s in (a_low, a_high, a_low2, a_running, a_held, b_low, b_high, unplaced)
        }
        job = await get_job(session, a_running.id)
        assert await get_job(session, a_running.id, owner="bob") is None
        assert (await get_job(session, a_running.id, owner="alice")).id == a_running.id
        assert await get_job(session, "01900000-0000-7000-8000-999999999999") is None

    async with sessions() as session:
        listed = {j.id: j.queue_position for j in (await list_jobs(session))[0]}
    assert listed == positions
    assert positions == {
        a_high.id: 0,
        a_low.id: 1,
        a_low2.id: 2,
        a_running.id: None,
        a_held.id: None,
        b_high.id: 0,
        b_low.id: 1,
        unplaced.id: None,
    }
    assert isinstance(job, v1.Job)
    assert job.state is v1.JobState.RUNNING
    assert job.node == "a"
    assert job.owner == "alice"
    assert [t.state for t in job.transitions] == ["queued", "starting", "running"]
    assert job.labels == {"team": "ml", "gpu": "a100"}
    assert job.command == ["echo", "4"]
    assert job.usage == v1.Usage(cpu_seconds=1.5, max_rss_bytes=1024)
    assert job.artifacts == [v1.Artifact(name="out.txt", size=3)]
    assert job.ports == {"8080/tcp": "127.0.0.1:32768"}
    assert job.details == {"container": "abc"}
    # what the API serves round-trips through the contract
    assert v1.decode(v1.encode(job), v1.Job) == job


@pytest.fixture
async def catalogue(make_job, add):
    """Twelve jobs across owners, names, nodes, states and labels; returned oldest first."""
    seeds = [
        make_job(owner="alice", name="train", node="a", state="queued", labels={"team": "ml", "env": "prod"}),
        make_job(owner="alice", name="train", node="a", state="running", labels={"team": "ml", "env": "dev"}),
        make_job(
            owner="bob", name="etl", node="b", state="succeeded", labels={"team": "data", "env": "prod"}
        ),
        make_job(owner="bob", name="etl", node="b", state="failed", labels={"team": "data"}),
        make_job(owner="carol", name="train", node="b", state="queued", labels={"team": "ml", "env": "prod"}),
        make_job(owner="alice", name="eval", node=None, state="held"),
        make_job(owner="carol", name="eval", node="a", state="cancelled", labels={"env": "prod"}),
        make_job(owner="bob", name="train", node="a", state="queued", labels={"team": "ml"}),
        make_job(
            owner="alice", name="etl", node="b", state="timed_out", labels={"team": "data", "env": "dev"}
        ),
        make_job(
            owner="carol", name="train", node="a", state="starting", labels={"team": "ml", "env": "prod"}
        ),
        make_job(owner="alice", name="train", node="a", state="lost", labels={"team": "ml"}),
        make_job(owner="bob", name="eval", node="b", state="queued", labels={"env": "dev"}),
    ]
    await add(*seeds)
    return seeds


def newest_first(seeds, keep):
    return [s.id for s in reversed(seeds) if keep(s.job)]


async def test_list_jobs_filters(sessions, catalogue):
    def labels_of(job):
        return {
            (lbl.key, lbl.value)
            for s in catalogue
            if s.id == job.id
            for lbl in s.extra
            if hasattr(lbl, "key")
        }

    cases = [
        ({}, lambda j: True),
        ({"states": ["queued"]}, lambda j: j.state == "queued"),
        (
            {"states": ["queued", "running", "starting"]},
            lambda j: j.state in ("queued", "running", "starting"),
        ),
        ({"node": "b"}, lambda j: j.node == "b"),
        ({"name": "train"}, lambda j: j.name == "train"),
        ({"owner": "bob"}, lambda j: j.owner == "bob"),
        ({"labels": {"team": "ml"}}, lambda j: ("team", "ml") in labels_of(j)),
        (
            {"labels": {"team": "ml", "env": "prod"}},
            lambda j: {("team", "ml"), ("env", "prod")} <= labels_of(j),
        ),
        (
            {"owner": "carol", "name": "train", "states": ["queued"], "node": "b", "labels": {"env": "prod"}},
            lambda j: j.owner == "carol" and j.name == "train" and j.state == "queued" and j.node == "b",
        ),
        ({"owner": "nobody"}, lambda j: False),
    ]
    async with sessions() as session:
        for filters, keep in cases:
            jobs, cursor = await list_jobs(session, **filters)
            assert [j.id for j in jobs] == newest_first(catalogue, keep), filters
            assert cursor is None
    assert len(newest_first(catalogue, cases[7][1])) == 3  # the two-label case picks a strict subset


async def test_pagination_walks_every_page_once(sessions, catalogue):
    async with sessions() as session:
        for filters in ({}, {"owner": "alice"}, {"labels": {"team": "ml"}}):
            expected = [j.id for j in (await list_jobs(session, **filters, limit=100))[0]]
            for limit in (1, 2, 5, len(expected) - 1, len(expected)):
                seen, cursor, pages = [], None, 0
                while True:
                    jobs, cursor = await list_jobs(session, **filters, limit=limit, cursor=cursor)
                    pages += 1
                    assert 0 < len(jobs) <= limit
                    seen += [j.id for j in jobs]
                    if cursor is None:
                        break
                assert seen == expected, (filters, limit)
                assert pages == -(-len(expected) // limit)


@pytest.mark.parametrize(
    "cursor",
    [
        "!!!not-base64!!!",
        base64.urlsafe_b64encode(b"\xff\xfe\x00").decode(),
        base64.urlsafe_b64encode(b"x' OR '1'='1").decode(),
        base64.urlsafe_b64encode(b"a" * 80).decode(),
        "",
    ],
)
async def test_malformed_cursor_is_refused(sessions, cursor):
    async with sessions() as session:
        with pytest.raises(InvalidCursor, match="malformed cursor") as info:
            await list_jobs(session, cursor=cursor)
    assert isinstance(info.value, ValueError)


async def test_limit_outside_the_range_is_refused(sessions):
    async with sessions() as session:
        for limit in (0, -1, 1001):
            with pytest.raises(ValueError, match="limit must be between"):
                await list_jobs(session, limit=limit)


async def test_query_count_does_not_grow_with_the_page(engine, sessions, make_job, add):
    """Two statements for any page holding queued jobs (the page with each job's transitions, then the
    positions and estimated starts with all they need), one for one without, whatever the page size,
    the filter, the nodes, owners and priorities on the page; one job likewise (there were 8 and more
    per page, then 3 with the transitions in a statement of their own)."""
    seeds = [
        make_job(
            node=("a", "b", "c")[i % 3],
            owner=("alice", "bob", "carol", "dave")[i % 4],
            name=("train", "eval")[i % 2],
            state=("queued", "running", "succeeded", "queued", "starting")[i % 5],
            priority=i % 4,
            expected_runtime=float(60 + i),
            dispatched_at=NOW,
            labels={"team": "ml", "i": str(i)},
            states=["queued", "starting", "running"],
        )
        for i in range(300)
    ]
    await add(*seeds, node_row("a", slots=2), node_row("b", slots=3))
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    def selects():
        return sum(1 for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH")))

    filters: list[dict] = [
        {},
        {"states": ["queued"]},
        {"states": ["queued", "running", "starting"]},
        {"owner": "bob"},
        {"name": "train"},
        {"node": "b"},
        {"labels": {"team": "ml"}},
    ]
    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        for kw in filters:
            for limit in (1, 5, 50, 200):
                statements.clear()
                async with sessions() as session:
                    jobs, more = await list_jobs(session, **kw, limit=limit)
                assert len(jobs) == limit or (jobs and more is None), (kw, limit)
                assert all(len(j.transitions) == 3 and len(j.labels) == 2 for j in jobs)
                queued = [j for j in jobs if j.state == "queued"]
                assert all(j.queue_position is not None and j.estimated_start for j in queued)
                assert selects() == (2 if queued else 1), (kw, limit)
        for seed, want in ((seeds[0], 2), (seeds[1], 1)):  # queued, running
            statements.clear()
            async with sessions() as session:
                job = await get_job(session, seed.id)
            assert (job.queue_position is not None) is (want == 2)
            assert selects() == want
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def test_list_nodes_counts_and_queued_seconds(sessions, make_job, add):
    gpus = [v1.GpuInfo(index=0, name="A100", memory_total_mib=81920)]
    await add(
        node_row("a", slots=2, labels={"zone": "x"}, gpus=gpus),
        node_row("b", slots=1),
        node_row("c", state="down"),
        # a: queued 100 + 50, running with 300 expected started 100 s ago (200 left),
        #    starting with 60 expected dispatched 100 s ago (0 left, never negative), one without estimate
        make_job(node="a", expected_runtime=100.0),
        make_job(node="a", expected_runtime=50.0, priority=3),
        make_job(
            node="a",
            state="running",
            expected_runtime=300.0,
            started_at=NOW - timedelta(seconds=100),
            dispatched_at=NOW - timedelta(seconds=400),
        ),
        make_job(
            node="a", state="starting", expected_runtime=60.0, dispatched_at=NOW - timedelta(seconds=100)
        ),
        make_job(node="a", state="running", expected_runtime=None, started_at=NOW),
        # b: a dispatched-only job counts its whole estimate when it has no times yet
        make_job(node="b", state="starting", expected_runtime=30.0),
        make_job(node="b", expected_runtime=None),
        # not on any node's load
        make_job(node="b", state="succeeded", expected_runtime=1000.0),
        make_job(node="a", state="held", expected_runtime=1000.0),
        make_job(node=None, expected_runtime=1000.0),
    )
    async with sessions() as session:
        nodes = {n.name: n for n in await list_nodes(session, now=NOW)}
    assert list(nodes) == ["a", "b", "c"]
    a, b, c = nodes["a"], nodes["b"], nodes["c"]
    assert (a.running, a.queued, a.queued_seconds) == (3, 2, (150.0 + 200.0) / 2)
    assert (b.running, b.queued, b.queued_seconds) == (1, 1, 30.0)
    assert (c.running, c.queued, c.queued_seconds, c.state) == (0, 0, 0.0, "down")
    assert a.capacity == v1.NodeCapacity(slots=2, cpus=4.0)
    assert a.labels == {"zone": "x"}
    assert c.labels == {}
    assert a.gpus == gpus
    assert b.gpus == []
    assert a.state == "up"
    assert a.last_heartbeat == NOW


async def test_list_nodes_uses_a_constant_number_of_queries(engine, sessions, make_job, add):
    await add(*(node_row(f"n{i}") for i in range(10)), *(make_job(node=f"n{i % 10}") for i in range(30)))
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        async with sessions() as session:
            nodes = await list_nodes(session)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert len(nodes) == 10
    assert all(n.queued == 3 for n in nodes)
    assert len(statements) == 3


async def test_datetimes_come_back_aware_and_equal(sessions, make_job, add):
    created = datetime(2026, 6, 30, 23, 59, 58, 123456, tzinfo=timezone(timedelta(hours=2)))
    started = datetime(2026, 7, 1, 0, 0, 1, 654321, tzinfo=UTC)
    seed = make_job(state="running", node="a", created_at=created, started_at=started)
    await add(seed, node_row("a"))
    async with sessions() as session:
        job = await get_job(session, seed.id)
        (node,) = await list_nodes(session)
    for value, original in ((job.created_at, created), (job.started_at, started), (node.last_heartbeat, NOW)):
        assert value.utcoffset() == timedelta(0)
        assert value == original
    assert job.created_at.replace(tzinfo=None) == datetime(2026, 6, 30, 21, 59, 58, 123456)
    assert job.ended_at is None
    assert all(t.at.tzinfo is not None for t in job.transitions)


async def test_list_jobs_of_an_array_or_a_workflow_pages_newest_first(sessions, make_job, add):
    """``?array=`` and ``?workflow=`` keep exactly those jobs, combine with the other filters and page
    with the same cursor; an unknown workflow (or one given a malformed id) lists nothing."""
    from jobwire.store.models import WorkflowRow

    tasks = [make_job(array_id="01900000-0000-7000-8000-a00000000001", array_index=i) for i in range(7)]
    others = [make_job(state="succeeded") for _ in range(3)]
    flow = [make_job(state="succeeded" if i % 2 else "queued", name=f"step{i}") for i in range(5)]
    wf_id = "01900000-0000-7000-8000-f00000000001"
    names = {f"step{i}": s.id for i, s in enumerate(flow)}
    row = WorkflowRow(id=wf_id, owner="alice", name="wf", created_at=NOW, jobs=v1.encode(names))
    await add(*tasks, *others, *flow, row)
    array_id = tasks[0].job.array_id
    async with sessions() as session:
        jobs, cursor = await list_jobs(session, array=array_id)
        assert [j.id for j in jobs] == [s.id for s in reversed(tasks)] and cursor is None
        assert {j.array_index for j in jobs} == set(range(7))
        jobs, _ = await list_jobs(session, workflow=wf_id)
        assert [j.id for j in jobs] == [s.id for s in reversed(flow)]
        jobs, _ = await list_jobs(session, workflow=wf_id, states=["queued"])
        assert [j.id for j in jobs] == [flow[4].id, flow[2].id, flow[0].id]
        assert (await list_jobs(session, workflow=wf_id, owner="bob"))[0] == []
        assert (await list_jobs(session, workflow="01900000-0000-7000-8000-f00000000999"))[0] == []
        assert (await list_jobs(session, workflow="not an id"))[0] == []
        for filters, expected in ((dict(array=array_id), tasks), (dict(workflow=wf_id), flow)):
            seen, cursor = [], None
            while True:
                jobs, cursor = await list_jobs(session, **filters, limit=2, cursor=cursor)
                seen += [j.id for j in jobs]
                if cursor is None:
                    break
            assert seen == [s.id for s in reversed(expected)], filters


async def test_transitions_read_as_stored_in_their_order(sessions, make_job, add):
    """A job's times and history on a page and alone: every transition in the order it was written (not
    by time), its instant exact to the microsecond and in UTC, a reason with quotes, a newline and non-ASCII
    characters as written, and each attempt's node and exit code (they come as JSON in the job's row)."""
    base = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    seed = make_job(state="failed", node="b", started_at=base + timedelta(seconds=8), ended_at=base)
    seed.job.attempt, seed.job.created_at = 2, base - timedelta(microseconds=1)
    written = [
        ("queued", base, None, 0, None, None),
        ("starting", base + timedelta(microseconds=1), None, 1, "a", None),
        ("running", base + timedelta(seconds=1), None, 1, "a", None),
        ("failed", base + timedelta(seconds=2), 'said "no"\nthen \u00e9\u2713 \\ gone', 1, "a", 3),
        ("queued", base + timedelta(seconds=1, microseconds=500), "retry", 1, None, None),  # earlier at
        ("failed", base + timedelta(seconds=9), None, 2, "b", 137),
    ]
    seed.extra[:] = [  # in place of the one transition make_job writes
        TransitionRow(job_id=seed.job.id, state=s, at=at, reason=r, attempt=a, node=n, exit_code=x)
        for s, at, r, a, n, x in written
    ]
    await add(seed)
    async with sessions() as session:
        page, _ = await list_jobs(session, limit=5)
        alone = await get_job(session, seed.job.id)
    assert alone is not None and page == [alone]
    got = [(t.state.value, t.at, t.reason, t.attempt) for t in alone.transitions]
    assert got == [(s, at, r, a) for s, at, r, a, _, _ in written]
    assert all(t.at.utcoffset() == timedelta(0) for t in alone.transitions)
    times = (alone.created_at, alone.started_at, alone.ended_at, alone.not_before)
    assert times == (base - timedelta(microseconds=1), base + timedelta(seconds=8), base, None)
    assert alone.created_at.utcoffset() == timedelta(0)
    assert [(a.attempt, a.node, a.exit_code, a.reason) for a in alone.attempts] == [
        (1, "a", 3, written[3][2]),
        (2, "b", 137, None),
    ]
