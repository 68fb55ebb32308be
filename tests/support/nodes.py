"""A node row as the scheduler stores one when a node registers: what tests seed for the gateway to read
(the gateway itself writes no node row; only the scheduler does)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from jobwire.contracts import v1
from jobwire.store.models import NodeRow


async def store_node(
    sessions: async_sessionmaker[AsyncSession],
    name: str,
    backend: str = "local",
    capacity: v1.NodeCapacity | None = None,
    *,
    state: str = "up",
    gpus: list[v1.GpuInfo] | None = None,
    at: datetime | None = None,
    **row: Any,
) -> None:
    """Stores ``name`` registered and last heard at ``at`` (now), ``state`` as the scheduler marked it."""
    at = at or datetime.now(UTC)
    async with sessions() as session, session.begin():
        session.add(
            NodeRow(
                name=name,
                backend=backend,
                state=state,
                capacity=v1.encode(capacity or v1.NodeCapacity()),
                labels=v1.encode({}),
                gpus=v1.encode(gpus) if gpus is not None else None,
                registered_at=at,
                last_heartbeat=at,
                **row,
            )
        )
