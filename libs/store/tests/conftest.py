"""Store fixtures: a migrated database on both backends (via ``database_url``) and row builders."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from jobwire.contracts import v1
from jobwire.store import make_engine, migrate, session_factory
from jobwire.store.models import Base, JobLabelRow, JobRow, TransitionRow

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Seed:
    """A job row with the label and transition rows that go with it."""

    job: JobRow
    extra: list[Base] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.job.id


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await migrate(database_url)
    eng = make_engine(database_url)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
def make_job() -> Callable[..., Seed]:
    """Build jobs whose ids grow with each call, so creation order is id order (as with UUIDv7)."""
    counter = itertools.count(1)

    def build(*, labels: dict[str, str] | None = None, states: list[str] | None = None, **kw: Any) -> Seed:
        n = next(counter)
        job_id = kw.pop("id", f"01900000-0000-7000-8000-{n:012d}")
        kw.setdefault("state", "queued")
        spec = v1.JobSpec(command=["echo", str(n)], labels=labels or {}, name=kw.get("name"))
        job = JobRow(
            id=job_id,
            owner=kw.pop("owner", "alice"),
            attempt=0,
            max_attempts=1,
            priority=kw.pop("priority", 0),
            spec=v1.encode(spec),
            created_at=kw.pop("created_at", T0 + timedelta(seconds=n)),
            cancel_requested=False,
            delete_requested=False,
            **kw,
        )
        extra: list[Base] = [JobLabelRow(job_id=job_id, key=k, value=v) for k, v in (labels or {}).items()]
        extra += [
            TransitionRow(job_id=job_id, state=s, at=T0 + timedelta(seconds=n, milliseconds=i), attempt=0)
            for i, s in enumerate(states or [job.state])
        ]
        return Seed(job, extra)

    return build


@pytest.fixture
def add(sessions: async_sessionmaker[AsyncSession]) -> Callable[..., Awaitable[None]]:
    """Insert seeds and other rows in one transaction, in any order (the models order the inserts)."""

    async def insert(*items: Seed | Base) -> None:
        async with sessions() as session, session.begin():
            for item in items:
                session.add_all([item.job, *item.extra] if isinstance(item, Seed) else [item])

    return insert
