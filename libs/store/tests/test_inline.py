"""The scheduler's SQLite engine runs statements in the event loop's thread (``sqlite_inline``): the same
transactions, locks and errors as through aiosqlite, without a worker thread per connection."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from jobwire.store import SQLITE_BEGIN, make_engine

pytestmark = pytest.mark.integration


@pytest.fixture
async def inline(tmp_path: Path):
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/inline.db", sqlite_inline=True)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)"))
    yield engine
    await engine.dispose()


async def test_statements_run_in_the_loops_thread_without_a_worker(inline):
    threads = threading.active_count()
    seen: list[int] = []
    async with inline.connect() as conn:

        def register(sync_conn: Any) -> None:
            sync_conn.connection.dbapi_connection.create_function(
                "whose", 0, lambda: seen.append(threading.get_ident()) or 1
            )

        await conn.run_sync(register)
        assert (await conn.execute(text("SELECT whose()"))).scalar() == 1
    assert seen == [threading.get_ident()]
    assert threading.active_count() == threads  # no aiosqlite thread started


async def test_commit_rollback_and_errors_as_through_aiosqlite(inline, tmp_path):
    async with inline.begin() as conn:
        await conn.execute(text("INSERT INTO t (id, v) VALUES (1, 'kept')"))

    async def fails_inside() -> None:
        async with inline.begin() as conn:
            await conn.execute(text("INSERT INTO t (id, v) VALUES (2, 'rolled back')"))
            raise RuntimeError

    with pytest.raises(RuntimeError):
        await fails_inside()
    with pytest.raises(IntegrityError):
        async with inline.begin() as conn:
            await conn.execute(text("INSERT INTO t (id, v) VALUES (1, 'twice')"))
    # what a reader through aiosqlite (the gateway) sees
    other = make_engine(f"sqlite+aiosqlite:///{tmp_path}/inline.db")
    try:
        async with other.connect() as conn:
            assert (await conn.execute(text("SELECT id, v FROM t"))).all() == [(1, "kept")]
    finally:
        await other.dispose()


async def test_begin_immediate_holds_the_write_lock_against_other_writers(inline, tmp_path):
    other = make_engine(f"sqlite+aiosqlite:///{tmp_path}/inline.db", connect_args={"timeout": 0.1})
    try:
        async with inline.connect() as conn:
            conn = await conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            async with conn.begin():
                await conn.execute(text("SELECT count(*) FROM t"))  # a read first, then the write
                async with other.connect() as writer:
                    await writer.exec_driver_sql("PRAGMA busy_timeout=50")
                    await writer.commit()
                    with pytest.raises(OperationalError, match="locked"):
                        async with writer.begin():
                            await writer.execute(text("INSERT INTO t (id, v) VALUES (5, 'late')"))
                await conn.execute(text("INSERT INTO t (id, v) VALUES (3, 'mine')"))
        async with other.connect() as reader:
            assert (await reader.execute(text("SELECT v FROM t"))).scalars().all() == ["mine"]
    finally:
        await other.dispose()


async def test_readers_run_beside_the_one_writer(inline):
    """The scheduler's use: one writing connection, reads on others meanwhile (WAL: no lock between)."""
    async with inline.begin() as conn:
        await conn.execute(text("INSERT INTO t (id, v) VALUES (1, 'committed')"))
    async with inline.connect() as writer:
        writer = await writer.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
        async with writer.begin():
            await writer.execute(text("INSERT INTO t (id, v) VALUES (2, 'not yet')"))

            async def read() -> list[str]:
                async with inline.connect() as reader:
                    await asyncio.sleep(0)
                    return list((await reader.execute(text("SELECT v FROM t"))).scalars())

            assert await asyncio.gather(*(read() for _ in range(4))) == [["committed"]] * 4
    async with inline.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 2
