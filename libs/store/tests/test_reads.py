"""``jobwire.store.reads``: the gateway's reads, on both databases; on PostgreSQL no transaction or ping
around them, and a connection the server closed is replaced without the read failing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from jobwire.store import make_engine, queries, session_factory
from jobwire.store.reads import Reads


async def test_a_read_answers_a_page_and_a_job(database_url, make_job, add):
    jobs = [make_job(node="a"), make_job(node="a", state="running", states=["queued", "running"])]
    await add(*jobs)
    reads = Reads(database_url)
    try:
        page, cursor = await reads(queries.list_jobs_sync, limit=10)
        assert [j.id for j in page] == [jobs[1].id, jobs[0].id] and cursor is None
        assert [t.state.value for t in page[0].transitions] == ["queued", "running"]
        assert page[1].queue_position == 0 and page[0].queue_position is None  # first in its queue
        one = await reads(queries.get_job_sync, jobs[0].id, owner="bob")
        assert one is None
    finally:
        await reads.dispose()


def _logged(engine: Any) -> list[str]:
    """The queries asyncpg logs on ``engine``'s connections: its simple queries (BEGIN, ROLLBACK, the
    pool's ping ``;``), not the prepared statements of the reads themselves."""
    seen: list[str] = []

    @event.listens_for(engine, "connect")
    def _log(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection._connection.add_query_logger(lambda q: seen.append(q.query.strip()))

    return seen


def _selects(engine: Any) -> list[str]:
    sent: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _record(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    return sent


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_postgres_sends_only_the_reads_statements(database_url, make_job, add):
    await add(make_job(node="a"), make_job(node="a", state="succeeded"))
    reads = Reads(database_url)
    around, statements = _logged(reads.watched), _selects(reads.watched)
    writers = make_engine(database_url)  # the store's default engine, as the scheduler's
    default = _logged(writers.sync_engine)
    try:
        await reads(queries.list_jobs_sync, limit=10)  # a new connection's set-up (asyncpg's introspection)
        for _ in range(2):
            around.clear(), statements.clear()
            page, _ = await reads(queries.list_jobs_sync, limit=10)
            assert len(page) == 2
            # the page with its transitions, the queued job's estimates; no BEGIN, ROLLBACK or ping (";")
            assert len(statements) == 2 and all(s.lstrip().startswith("SELECT") for s in statements)
            assert around == []
        async with session_factory(writers)() as session:  # the log sees them where they are sent
            await session.run_sync(queries.list_jobs_sync, limit=10)
        assert "BEGIN;" in default and "ROLLBACK;" in default, default
    finally:
        await writers.dispose()
        await reads.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_postgres_read_survives_a_connection_the_server_closed(database_url, make_job, add):
    job = make_job(node="a")
    await add(job)
    reads = Reads(database_url)
    admin = make_engine(database_url)
    try:

        def backend(session: Session) -> int:
            return int(session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar_one())

        pid = await reads(backend)
        async with admin.connect() as conn:  # what a server restart or an idle timeout does to it
            assert (await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})).scalar()
        found = await reads(queries.get_job_sync, job.id)
        assert found is not None and found.id == job.id
        assert await reads(backend) != pid  # served by a new connection
    finally:
        await admin.dispose()
        await reads.dispose()
