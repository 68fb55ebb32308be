"""Engines for PostgreSQL (asyncpg) and SQLite (aiosqlite), and the migration entry point.

Both backends run the same code and the same migrations, so a laptop runs the stack on a SQLite file and a
site runs it on PostgreSQL without a second code path.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from . import inline

DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///.jobwire/jobwire.db"
#: Execution option naming how SQLite begins a transaction ("DEFERRED", "IMMEDIATE", "EXCLUSIVE").
#: A writer that reads before it writes wants "IMMEDIATE", so it waits for the lock instead of failing.
SQLITE_BEGIN = "jobwire_sqlite_begin"
#: Key of the PostgreSQL advisory lock that serialises concurrent migrations ("jobwire" in ASCII).
MIGRATION_LOCK_KEY = 0x6A6F6277697265
MIGRATIONS_DIR = Path(__file__).parent / "migrations"

#: libpq's TLS parameters, accepted in a ``postgresql://`` URL and turned into asyncpg's ``ssl``
_PG_TLS_PARAMS = ("sslmode", "sslrootcert", "sslcert", "sslkey")
_PG_SSLMODES = frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})
_SQLITE_PRAGMAS = ("journal_mode=WAL", "busy_timeout=5000", "foreign_keys=ON", "synchronous=NORMAL")
_SQLITE_BEGIN_MODES = frozenset({"DEFERRED", "IMMEDIATE", "EXCLUSIVE"})


def normalize_url(url: str | URL) -> URL:
    """The URL with its async driver: ``postgresql://`` means asyncpg, ``sqlite://`` means aiosqlite."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+asyncpg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    raise ValueError(f"unsupported database {backend!r}: use a postgresql:// or sqlite:// URL")


def make_engine(url: str | URL, *, sqlite_inline: bool = False, **kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite gets WAL and real transactions (BEGIN emitted by us, not the driver).

    ``sqlite_inline``: SQLite statements run in the event loop's thread, not aiosqlite's worker thread
    (see :mod:`jobwire.store.inline`: for the one writer, whose loop exists to run its batches).
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
        parsed, tls = pg_tls(parsed)
        if tls is not None:
            kwargs["connect_args"] = {**kwargs.get("connect_args", {}), "ssl": tls}
        return create_async_engine(parsed, **kwargs)
    database = parsed.database or ""
    if database and database != ":memory:" and not parsed.query.get("uri"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(parsed, **kwargs)
    _configure_sqlite(engine.sync_engine)
    if sqlite_inline:

        @event.listens_for(engine.sync_engine, "do_connect")
        def _connect_inline(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
            return dialect.loaded_dbapi.connect(*cargs, async_creator_fn=inline.connect, **cparams)

    return engine


def make_reader(url: str | URL) -> Engine | None:
    """For a SQLite URL, a synchronous engine on the same file for reads run in a worker thread: a read
    of three statements through aiosqlite hands 15 calls to its thread and back (cursor, execute,
    fetch, close, each a wake-up of two threads), which on a loaded machine cost more than the reads;
    one ``asyncio.to_thread`` for the whole read costs one. None for PostgreSQL (asyncpg has no thread).
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    # each worker thread takes a connection from the pool (SQLite allows that once none is shared), as
    # many as asyncio's default executor runs threads, so a read never waits for a connection
    engine = create_engine(
        parsed.set(drivername="sqlite+pysqlite"),
        connect_args={"check_same_thread": False},
        pool_size=min(32, (os.cpu_count() or 1) + 4),
    )
    _configure_sqlite(engine)
    return engine


def pg_tls(url: URL) -> tuple[URL, ssl.SSLContext | str | None]:
    """The URL without libpq's TLS parameters, and what asyncpg's ``ssl`` argument makes of them.

    asyncpg reads ``sslmode``/``sslrootcert`` only from a DSN, and SQLAlchemy hands it keywords, so
    ``?sslmode=verify-full&sslrootcert=/run/secrets/pg-ca.crt`` (the spelling every PostgreSQL
    client knows) would otherwise fail. ``verify-ca``/``verify-full`` trust ``sslrootcert`` (or the
    system's CAs without one); ``sslcert``/``sslkey`` add a client certificate.
    """
    query = dict(url.query)
    given = {k: query.pop(k) for k in _PG_TLS_PARAMS if k in query}
    if not given:
        return url, None
    params = {k: v if isinstance(v, str) else v[-1] for k, v in given.items()}
    root, cert, key = params.get("sslrootcert"), params.get("sslcert"), params.get("sslkey")
    # libpq: a root certificate with sslmode unset (or require) means verify the server's CA
    mode = params.get("sslmode") or ("verify-ca" if root else "prefer")
    if mode not in _PG_SSLMODES:
        raise ValueError(f"sslmode={mode!r} is not one of {sorted(_PG_SSLMODES)}")
    if mode == "require" and root:
        mode = "verify-ca"
    stripped = url.set(query=query)
    if mode in ("disable", "allow", "prefer"):
        if cert:
            raise ValueError(f"sslcert needs sslmode=require, verify-ca or verify-full, not {mode!r}")
        return stripped, mode
    if mode == "require" and not cert:
        return stripped, mode
    context = ssl.create_default_context(cafile=root)
    context.check_hostname = mode == "verify-full"
    if mode == "require":  # encrypted, server not verified (libpq's meaning)
        context.verify_mode = ssl.CERT_NONE
    if cert:
        context.load_cert_chain(cert, key)
    return stripped, context


def _configure_sqlite(engine: Engine) -> None:
    # Python 3.11's sqlite3 never BEGINs before a SELECT or DDL (its legacy mode), which breaks repeatable
    # reads, savepoints and transactional DDL; the SQLAlchemy-documented fix is to emit BEGIN ourselves.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in _SQLITE_PRAGMAS:
                cursor.execute(f"PRAGMA {pragma}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return
        mode = str(options.get(SQLITE_BEGIN, "DEFERRED")).upper()
        if mode not in _SQLITE_BEGIN_MODES:
            raise ValueError(f"{SQLITE_BEGIN} must be one of {sorted(_SQLITE_BEGIN_MODES)}, not {mode!r}")
        conn.exec_driver_sql(f"BEGIN {mode}")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit (handlers publish them after the commit)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations; no alembic.ini is needed."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def migrate(url: str | URL) -> None:
    """Bring the database to the newest schema; a no-op when it is already there.

    The whole upgrade runs in one transaction that first takes a lock (``pg_advisory_xact_lock`` on
    PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so processes starting together migrate one after the other
    and the later ones find nothing to do.
    """
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            async with conn.begin():
                if engine.dialect.name == "postgresql":
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
                await conn.run_sync(_upgrade)
    finally:
        await engine.dispose()


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def current_revision(url: str | URL) -> str | None:
    """The revision the database is at (None before the first migration)."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    finally:
        await engine.dispose()
