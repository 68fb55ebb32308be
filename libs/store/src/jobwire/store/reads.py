"""How a reader runs the store's synchronous queries (``queries.*_sync``), one read in one step.

The gateway answers every GET with one of these reads; ``benchmarks/read_bench`` times the same path.

- SQLite: in a worker thread on a synchronous connection to the same file (``engine.make_reader``): one
  hand-off for the whole read, where aiosqlite takes several per statement.
- PostgreSQL: in one greenlet of an async session on an engine of its own, in autocommit and without
  the pool's pre-ping. A read through the default engine paid five round trips besides its two or three
  statements: the pre-ping's BEGIN, ``;`` and ROLLBACK (SQLAlchemy's asyncpg ping opens a transaction),
  then the session's BEGIN and ROLLBACK. They bought nothing: under READ COMMITTED every statement takes
  its own snapshot inside a transaction too, and a read writes nothing to roll back. A connection the
  server closed meanwhile (a restart, an idle timeout) is the pre-ping's case: here the read fails on
  it, SQLAlchemy invalidates the pool's older connections, and the read runs once more on a new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.orm import Session

from .engine import make_engine, make_reader, normalize_url

P = ParamSpec("P")
T = TypeVar("T")


class Reads:
    """Runs read queries for one database URL; ``dispose`` closes what it opened."""

    def __init__(self, url: str | URL, *, pool_size: int = 5, max_overflow: int = 10) -> None:
        self._thread_engine: Engine | None = make_reader(url)
        self._engine: AsyncEngine | None = None
        if self._thread_engine is None:
            parsed = normalize_url(url)
            self._engine = make_engine(
                parsed,
                isolation_level="AUTOCOMMIT",
                pool_pre_ping=False,
                pool_size=pool_size,
                max_overflow=max_overflow,
            )
            self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)

    @property
    def watched(self) -> Engine:
        """The synchronous engine whose statements a read sends (for event listeners)."""
        if self._thread_engine is not None:
            return self._thread_engine
        assert self._engine is not None
        return self._engine.sync_engine

    async def __call__(
        self, query: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``query(session, *args, **kwargs)`` on a session of its own."""
        engine = self._thread_engine
        if engine is not None:
            thread_engine = engine

            def in_thread() -> T:
                with Session(thread_engine) as session:
                    return query(session, *args, **kwargs)

            return await asyncio.to_thread(in_thread)
        try:
            async with self._sessions() as session:
                return await session.run_sync(query, *args, **kwargs)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        # the connection was gone (the pool now replaces those opened before it): once more, on a new one
        async with self._sessions() as session:
            return await session.run_sync(query, *args, **kwargs)

    async def dispose(self) -> None:
        if self._thread_engine is not None:
            self._thread_engine.dispose()
        if self._engine is not None:
            await self._engine.dispose()
