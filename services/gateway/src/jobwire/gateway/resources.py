"""What the app holds while it runs (connections, never data) and how handlers get it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Concatenate, ParamSpec, TypeVar, cast

from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from jobwire.runtime.bus import Bus
from jobwire.store import SQLITE_BEGIN
from jobwire.store.reads import Reads

from .auth.tokens import TokenMemory
from .jobs.admission import Admissions
from .nodes.snapshot import NodeSnapshot
from .settings import GatewaySettings
from .streams import StreamSlots
from .waiters import EventWaiters

STATE_KEY = "jobwire"
P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class Resources:
    settings: GatewaySettings
    bus: Bus
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    waiters: EventWaiters
    #: the registered nodes, for refusing at submit a job none could ever run
    nodes: NodeSnapshot
    tokens: TokenMemory
    admissions: Admissions
    #: (owner, sha256) of the shared API keys
    keys: list[tuple[str, bytes]] = field(default_factory=list)
    #: open log and event streams per owner (this process)
    streams: StreamSlots = field(default_factory=lambda: StreamSlots(20))
    #: how ``read`` runs a query (``jobwire.store.reads``: a worker thread on SQLite, an autocommit
    #: engine of its own on PostgreSQL)
    reads: Reads | None = None

    def __post_init__(self) -> None:
        self.streams.per_owner = self.settings.streams_per_owner

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A short session. Jobs, tokens and the audit log are written only by the scheduler; the gateway
        still writes quotas and templates (admin actions, not the request path)."""
        async with self.sessions() as session:
            yield session

    async def read(self, query: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``query(session, ...)``, a synchronous read of the store (``queries.*_sync``), in one step
        (``jobwire.store.reads``); without ``reads``, in one greenlet of a session of ``sessions``."""
        if self.reads is not None:
            return await self.reads(query, *args, **kwargs)
        async with self.sessions() as session:
            return await session.run_sync(query, *args, **kwargs)

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        """A write transaction (committed at the end) that takes SQLite's write lock first, so a read
        followed by a write waits for the scheduler instead of failing with "database is locked"."""
        async with self.sessions() as session:
            await session.connection(execution_options={SQLITE_BEGIN: "IMMEDIATE"})  # begins
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise
            await session.commit()


def provide_resources(state: State) -> Resources:
    return cast(Resources, state[STATE_KEY])
