"""The read path's query plans: every list filter, a deep cursor, one job and the counts are served by an
index that matches them, on SQLite and on PostgreSQL, never by a sort of every match or a table scan.

The plans are those of the statements the queries really send (captured, then EXPLAINed with the same
parameters), on 20,000 jobs spread like a busy site's (most jobs finished, a few owners and nodes with
many jobs, labels on every job) and analysed, so the planners choose as they would in production.
"""

from __future__ import annotations

import json
import random
import re
import secrets
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from jobwire.contracts import v1
from jobwire.store import make_engine, migrate, queries, session_factory
from jobwire.store.models import JobLabelRow, JobRow
from tests.fixtures import postgres as pg

from .conftest import T0

pytestmark = pytest.mark.integration

JOBS = 20_000
#: a busy site's mix: most jobs are done, a few wait or run
STATES = {"succeeded": 83, "failed": 4, "cancelled": 3, "timed_out": 1, "queued": 4, "running": 3, "held": 2}
TABLES = ("jobs", "job_labels")


def _job_id(i: int) -> str:
    return f"01900000-0000-7000-8000-{i:012d}"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def busy_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One database per backend for the whole module: seeding 20,000 jobs is the slow part."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('plans') / 'jobwire.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = f"plans_{secrets.token_hex(4)}"
    pg._run(pg._admin(server, f'CREATE DATABASE "{name}"'))
    yield server.database_url(name)
    pg._run(pg._admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
async def busy(busy_url: str) -> AsyncIterator[AsyncEngine]:
    await migrate(busy_url)
    engine = make_engine(busy_url)
    await _seed(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(busy: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(busy)


async def _seed(engine: AsyncEngine) -> None:
    rnd = random.Random(11)
    spec = v1.encode(v1.JobSpec(command=["true"]))
    states = rnd.choices(list(STATES), weights=list(STATES.values()), k=JOBS)
    jobs, labels = [], []
    for i, state in enumerate(states):
        jobs.append(
            {
                "id": _job_id(i),
                "owner": f"user{int(rnd.paretovariate(1.2)) % 40}",
                "name": "train" if rnd.random() < 0.25 else f"exp{rnd.randrange(300)}",
                "state": state,
                "node": None if state == "held" else f"node{rnd.randrange(24)}",
                "attempt": 0,
                "max_attempts": 1,
                "priority": rnd.randrange(3),
                "spec": spec,
                "created_at": T0 + timedelta(seconds=i),
                "cancel_requested": False,
                "delete_requested": False,
                # a fifth of the jobs are tasks of 8 arrays of 500
                "array_id": f"array{(i // 5) % 8}" if i % 5 == 0 else None,
                "array_index": i // 40 if i % 5 == 0 else None,
            }
        )
        labels.append({"job_id": _job_id(i), "key": "team", "value": f"team{rnd.randrange(6)}"})
    async with engine.begin() as conn:
        await conn.execute(insert(JobRow), jobs)
        await conn.execute(insert(JobLabelRow), labels)
    async with engine.connect() as conn:
        await conn.exec_driver_sql("ANALYZE")
        await conn.commit()


@pytest.fixture
def captured(busy: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    """The SELECTs the engine sends, with their parameters, in order."""
    sent: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(busy.sync_engine, "before_cursor_execute", record)
    yield sent
    event.remove(busy.sync_engine, "before_cursor_execute", record)


async def _plan(engine: AsyncEngine, statement: str, parameters: Any) -> Any:
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            return (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)).all()
        found = await conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters)
        plan = found.scalar_one()
        return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]


def _sqlite_findings(plan: list[Any]) -> tuple[set[str], list[str]]:
    """Indexes used, and what is wrong: a scan of a whole table, or a sort in the same step as a table
    or index walk (the matches are sorted, not the page). An index walked in order under the page's
    LIMIT shows as SCAN or SEARCH ... USING INDEX, and is what we want."""
    used = {m for row in plan for m in re.findall(r"INDEX (\w+)", row[3])}
    tables = "|".join(TABLES)
    problems = [row[3] for row in plan if re.fullmatch(rf"SCAN ({tables})( AS \w+)?", row[3])]
    steps: dict[int, list[str]] = defaultdict(list)
    for _id, parent, _unused, detail in plan:
        steps[parent].append(detail)
    for details in steps.values():
        walks = any(re.match(rf"(SCAN|SEARCH) ({tables})\b", d) for d in details)
        if walks and any("TEMP B-TREE" in d for d in details):
            problems.append(f"sorts what it walks: {details}")
    return used, problems


def _pg_findings(plan: dict[str, Any]) -> tuple[set[str], list[str]]:
    """Indexes used, and what is wrong: a sequential scan of a table, or a Sort that reaches a table
    scan without a Limit in between (the matches are sorted, not the page)."""
    used: set[str] = set()
    problems: list[str] = []

    def visit(node: dict[str, Any], sorting: bool) -> None:
        kind, relation = node["Node Type"], node.get("Relation Name")
        if "Index Name" in node:
            used.add(node["Index Name"])
        if kind == "Seq Scan" and relation in TABLES:
            problems.append(f"sequential scan of {relation}")
        if sorting and relation in TABLES:
            problems.append(f"sorts the matches of a {kind} on {relation}")
        if kind == "Limit":
            sorting = False
        elif kind in ("Sort", "Incremental Sort"):
            sorting = True
        for child in node.get("Plans", []):
            visit(child, sorting and "Subplan Name" not in child)

    visit(plan, False)
    return used, problems


async def _check(engine: AsyncEngine, sent: list[tuple[str, Any]], index: str) -> None:
    statement, parameters = sent[0]  # the page (or the row, or the counts): what the filters decide
    plan = await _plan(engine, statement, parameters)
    sqlite = engine.dialect.name == "sqlite"
    used, problems = _sqlite_findings(plan) if sqlite else _pg_findings(plan)
    if index == "pk":
        index = "sqlite_autoindex_jobs_1" if sqlite else "jobs_pkey"
    assert index in used, (index, plan)
    assert problems == [], (problems, plan)


LISTS: dict[str, tuple[dict[str, Any], str]] = {
    "newest": ({}, "pk"),
    "state": ({"states": ["failed"]}, "ix_jobs_state_id"),
    "states": ({"states": ["failed", "queued", "held"]}, "ix_jobs_state_id"),
    "node": ({"node": "node7"}, "ix_jobs_node_id"),
    "owner": ({"owner": "user3"}, "ix_jobs_owner_id"),
    "owner and state": ({"owner": "user1", "states": ["failed"]}, "ix_jobs_owner_state_id"),
    "name": ({"name": "train"}, "ix_jobs_name_id"),
    "label": ({"labels": {"team": "team2"}}, "ix_job_labels_key_value_job_id"),
    "array": ({"array": "array3"}, "ix_jobs_array_id_id"),
    "array and state": ({"array": "array3", "states": ["succeeded"]}, "ix_jobs_array_id_id"),
}


@pytest.mark.parametrize("case", list(LISTS))
async def test_each_list_filter_walks_its_index_at_any_depth(busy, captured, sessions, case):
    filters, index = LISTS[case]
    async with sessions() as session:
        first, cursor = await queries.list_jobs(session, **filters, limit=50)
        assert len(first) == 50 and cursor is not None
        await _check(busy, captured, index)
        # a deep page: the cursor of a job far down the list
        matches = (await queries.list_jobs(session, **filters, limit=1000))[0]
        deep = matches[len(matches) // 2].id
        captured.clear()
        page, _ = await queries.list_jobs(session, **filters, cursor=queries.encode_cursor(deep))
        assert page and all(j.id < deep for j in page)
        await _check(busy, captured, index)


async def test_one_job_is_a_primary_key_lookup(busy, captured, sessions):
    async with sessions() as session:
        assert (await queries.get_job(session, _job_id(12_345))) is not None
    await _check(busy, captured, "pk")


@pytest.mark.parametrize(
    "filters", [{}, {"owner": "user2"}, {"node": "node5"}, {"owner": "user1", "node": "node1"}]
)
async def test_counts_read_the_counts_table_not_the_jobs(busy, captured, sessions, filters):
    async with sessions() as session:
        counts = await queries.count_jobs(session, **filters)
    assert sum(counts.values()) > 0
    statement, parameters = captured[0]
    assert len(captured) == 1
    plan = await _plan(busy, statement, parameters)
    text = json.dumps(plan) if isinstance(plan, dict) else repr(plan)
    assert "job_counts" in text
    assert not re.search(r"\bjobs\b", text.replace("job_counts", "")), plan


async def test_queue_estimates_read_short_index_ranges_only(busy, captured, sessions):
    """A ``state=queued`` page's positions and estimated starts (the third statement) read every input
    through an index: an owner's jobs ahead on a node by ``ix_jobs_node_state_owner`` (index only), a
    node's first running jobs by expected end by ``ix_jobs_active_end``, the queued counts per owner by
    ``ix_job_counts_node_state``; no scan of the jobs or of the counts, and no sort of a node's running
    jobs (the planner would read every one of them)."""
    async with sessions() as session:
        page, _ = await queries.list_jobs(session, states=["queued"], limit=50)
    assert page and all(j.queue_position is not None for j in page if j.node)
    assert len(captured) == 2  # the page with its transitions, then the estimates
    statement, parameters = captured[1]
    plan = await _plan(busy, statement, parameters)
    if busy.dialect.name == "sqlite":
        used, problems = _sqlite_findings(plan)
        problems += [row[3] for row in plan if re.fullmatch(r"SCAN job_counts( AS \w+)?", row[3])]
        problems += [row[3] for row in plan if "TEMP B-TREE" in row[3]]
    else:
        used, problems = _pg_findings(plan)

        def visit(node: dict[str, Any]) -> None:
            if node["Node Type"] == "Seq Scan" and node.get("Relation Name") == "job_counts":
                problems.append("sequential scan of job_counts")
            if node["Node Type"] in ("Sort", "Incremental Sort"):
                problems.append(f"a sort: {node.get('Sort Key')}")
            for child in node.get("Plans", []):
                visit(child)

        visit(plan)
    assert {"ix_jobs_node_state_owner", "ix_jobs_active_end", "ix_job_counts_node_state"} <= used, plan
    assert problems == [], (problems, plan)
