import asyncio
import os
import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, delete, func, inspect, select, text
from sqlalchemy.engine import make_url

from jobwire.contracts import v1
from jobwire.store import DEFAULT_SQLITE_URL, make_engine, migrate, session_factory
from jobwire.store.engine import current_revision, head_revision, normalize_url
from jobwire.store.models import Base, JobLabelRow, JobRow, NodeRow, TransitionRow

pytestmark = pytest.mark.integration


#: expression indexes, one expression per database, made by their migration (SQLAlchemy reflects none on
#: SQLite, so a model could not be compared on both); test_read_plans checks each serves its read
EXPRESSION_INDEXES = {"ix_jobs_active_end"}


def _diff(conn: Connection) -> list[Any]:
    def known(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        return not (type_ == "index" and reflected and name in EXPRESSION_INDEXES)

    opts = {"compare_type": True, "compare_server_default": True, "include_object": known}
    context = MigrationContext.configure(conn, opts=opts)
    with warnings.catch_warnings():  # SQLite's reflection says it skips them: known, and checked above
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        return list(compare_metadata(context, Base.metadata))


async def test_migrated_schema_matches_the_models(database_url):
    assert await current_revision(database_url) is None
    await migrate(database_url)
    assert await current_revision(database_url) == head_revision() is not None
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_migrating_twice_is_a_no_op_and_keeps_data(database_url):
    await migrate(database_url)
    engine = make_engine(database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            node = NodeRow(name="n1", backend="local", state="up", capacity=v1.encode(v1.NodeCapacity()))
            session.add(node)
            node.registered_at = datetime.now(UTC)
        await migrate(database_url)
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM nodes"))).scalar_one() == 1
            assert (await conn.execute(text("SELECT count(*) FROM alembic_version"))).scalar_one() == 1
    finally:
        await engine.dispose()


async def _cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jobwire.store",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_concurrent_migrations_from_several_processes(database_url):
    results = await asyncio.gather(*(_cli("migrate", database_url) for _ in range(4)))
    for rc, out in results:
        assert rc == 0, out
        assert f"at revision {head_revision()}" in out
    assert await current_revision(database_url) == head_revision()


async def test_cli_takes_the_url_from_the_environment(database_url):
    if database_url.startswith("postgresql"):  # the test server trusts any password; it must not be printed
        database_url = make_url(database_url).set(password="s3cret").render_as_string(hide_password=False)
    rc, out = await _cli("migrate", env={"JOBWIRE_DATABASE_URL": database_url})
    assert rc == 0, out
    assert await current_revision(database_url) == head_revision()
    assert "at revision" in out
    assert "s3cret" not in out


async def test_cli_rejects_an_unsupported_database():
    rc, out = await _cli("migrate", "mysql://localhost/x")
    assert rc == 2
    assert "unsupported database 'mysql'" in out


async def test_sqlite_engine_creates_its_directory_and_sets_pragmas(tmp_path: Path):
    db = tmp_path / "deep" / "er" / "jobwire.db"
    engine = make_engine(f"sqlite:///{db}")
    try:
        async with engine.connect() as conn:
            pragmas = {
                p: (await conn.exec_driver_sql(f"PRAGMA {p}")).scalar_one()
                for p in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
            }
    finally:
        await engine.dispose()
    assert db.parent.is_dir()
    assert pragmas == {"journal_mode": "wal", "busy_timeout": 5000, "foreign_keys": 1, "synchronous": 1}


def test_urls_get_their_async_driver():
    assert normalize_url("postgresql://u:p@h/db").drivername == "postgresql+asyncpg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    assert normalize_url(DEFAULT_SQLITE_URL).database == ".jobwire/jobwire.db"
    with pytest.raises(ValueError, match="unsupported database"):
        make_engine("mysql://localhost/x")


async def test_savepoints_and_begin_modes_work_on_both_backends(database_url):
    from jobwire.store import SQLITE_BEGIN

    await migrate(database_url)
    engine = make_engine(database_url)
    node = {"backend": "local", "state": "up", "capacity": b"{}", "registered_at": datetime.now(UTC)}
    try:
        async with session_factory(engine)() as session, session.begin():
            session.add(NodeRow(name="kept", **node))
            async with session.begin_nested() as savepoint:
                session.add(NodeRow(name="undone", **node))
                await session.flush()
                await savepoint.rollback()
        async with engine.connect() as conn:
            conn = await conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            async with conn.begin():
                names = (await conn.execute(text("SELECT name FROM nodes"))).scalars().all()
        assert names == ["kept"]
        if engine.dialect.name == "sqlite":
            async with engine.connect() as conn:
                conn = await conn.execution_options(**{SQLITE_BEGIN: "sometimes"})
                with pytest.raises(ValueError, match=SQLITE_BEGIN):
                    await conn.begin()
    finally:
        await engine.dispose()


async def test_a_flush_inserts_jobs_before_their_rows_and_deletes_cascade(make_job, sessions):
    seed = make_job(labels={"a": "1", "b": "2"}, states=["queued", "held"])
    async with sessions() as session, session.begin():
        session.add_all([*reversed(seed.extra), seed.job])  # children first: the models must reorder
    async with sessions() as session, session.begin():
        await session.execute(delete(JobRow).where(JobRow.id == seed.id))
    async with sessions() as session:
        for table in (TransitionRow, JobLabelRow):
            assert (await session.execute(select(func.count()).select_from(table))).scalar_one() == 0


async def test_0003_counts_and_indexes_jobs_already_stored(database_url):
    """Upgrading a database that holds jobs: they are counted once (the backfill), the new indexes exist,
    and the triggers count what comes after; downgrading removes it all and keeps the jobs."""
    from alembic import command

    from jobwire.store import queries
    from jobwire.store.engine import alembic_config

    def to(revision: str, *, down: bool = False) -> Any:
        def run(conn: Connection) -> None:
            config = alembic_config()
            config.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(config, revision)

        return run

    engine = make_engine(database_url)
    jobs = [
        ("01900000-0000-7000-8000-000000000001", "alice", None, "queued"),
        ("01900000-0000-7000-8000-000000000002", "alice", "n1", "running"),
        ("01900000-0000-7000-8000-000000000003", "bob", "n1", "succeeded"),
        ("01900000-0000-7000-8000-000000000004", "bob", "n1", "succeeded"),
    ]
    try:
        async with engine.begin() as conn:
            await conn.run_sync(to("0002"))
            for job_id, owner, node, state in jobs:
                await conn.execute(
                    text(
                        "INSERT INTO jobs (id, owner, node, state, attempt, max_attempts, priority, spec, "
                        "created_at, cancel_requested, delete_requested) VALUES (:id, :owner, :node, :state, "
                        "0, 1, 0, :spec, :at, false, false)"
                    ),
                    {
                        "id": job_id,
                        "owner": owner,
                        "node": node,
                        "state": state,
                        "spec": b"{}",
                        "at": datetime.now(),
                    },
                )
        await migrate(database_url)
        async with session_factory(engine)() as session:
            assert await queries.count_jobs(session) == {"queued": 1, "running": 1, "succeeded": 2}
            assert await queries.count_jobs(session, owner="bob", node="n1") == {"succeeded": 2}
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE jobs SET state = 'succeeded' WHERE owner = 'alice'"))
        async with session_factory(engine)() as session:
            assert await queries.count_jobs(session) == {"succeeded": 4}
        async with engine.connect() as conn:
            indexes = await conn.run_sync(lambda c: {i["name"] for i in inspect(c).get_indexes("jobs")})
        assert {"ix_jobs_state_id", "ix_jobs_node_id", "ix_jobs_owner_state_id"} <= indexes
        assert "ix_jobs_state_node" not in indexes
        async with engine.begin() as conn:
            await conn.run_sync(to("0002", down=True))
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM jobs WHERE owner = 'bob'"))  # no trigger left to fail
            assert (await conn.execute(text("SELECT count(*) FROM jobs"))).scalar_one() == 2
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
        assert "job_counts" not in tables
    finally:
        await engine.dispose()
