"""What the app holds while it runs (connections, never data) and how handlers get it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from jobwire.runtime.bus import Bus

from .settings import GatewaySettings
from .waiters import EventWaiters

STATE_KEY = "jobwire"


@dataclass
class Resources:
    settings: GatewaySettings
    bus: Bus
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    waiters: EventWaiters

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A short read-only session: the gateway never writes, the scheduler does."""
        async with self.sessions() as session:
            yield session


def provide_resources(state: State) -> Resources:
    return cast(Resources, state[STATE_KEY])
