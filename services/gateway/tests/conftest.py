"""Gateway fixtures: a migrated SQLite database, the gateway served in-process over real HTTP, and a
``seed`` helper that plays the scheduler's and executors' parts (rows in the database, messages on the bus).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.gateway import GatewaySettings, serve
from jobwire.runtime.bus import Bus
from jobwire.runtime.settings import BusSettings
from jobwire.store import make_engine, migrate, session_factory, tokens
from jobwire.store.models import JobLabelRow, JobRow, TransitionRow

ACCESS_SUBJECTS = frozenset(
    sj.cmd_subject(k) for k in ("audit", "token_create", "token_revoke", "token_touch")
)


@pytest.fixture
async def db_url(sqlite_url: str) -> str:
    await migrate(sqlite_url)
    return sqlite_url


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(db_url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def mint(sessions: async_sessionmaker[AsyncSession]):  # type: ignore[no-untyped-def]
    """Create a token in the database: ``await mint("alice", scopes=[...], days=1)`` gives its secret."""

    async def create(owner: str, *, admin: bool = False, **kw: Any) -> str:
        scopes = list(kw.pop("scopes", tokens.USER_SCOPES)) + (["admin"] if admin else [])
        async with sessions() as session, session.begin():
            return (await tokens.create_token(session, owner, scopes=scopes, **kw)).secret

    return create


@pytest.fixture
async def admin_token(mint) -> str:  # type: ignore[no-untyped-def]
    """An admin token (also what lets the gateway start: it refuses without a credential source)."""
    return str(await mint("root", admin=True))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def audit_log(client: httpx.AsyncClient, count: int, **params: Any) -> list[dict[str, Any]]:
    """``GET /v1/audit`` once it lists ``count`` entries: the scheduler writes them a few ms after the
    answer (the gateway stored each record in JetStream before answering)."""
    entries: list[dict[str, Any]] = []
    for _ in range(100):
        entries = (await client.get("/v1/audit", params=params)).json()["items"]
        if len(entries) >= count:
            return entries
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(entries)} audit entries, expected {count}")


@pytest.fixture
def settings(nats_url: str, db_url: str) -> GatewaySettings:
    return GatewaySettings(
        database_url=db_url,
        bus=BusSettings(nats_url=nats_url),
        accept_timeout=0.5,
        tracing=True,  # the tests see the trace context a command carries
        wait_timeout=0.5,
        log_eof_grace=1.0,
        sse_keepalive=1.0,
    )


@pytest.fixture
async def gateway(
    settings: GatewaySettings, clean_bus: Bus, admin_token: str
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client, as an admin, on a gateway served by uvicorn in this event loop (real streaming,
    real lifespan)."""
    async with (
        serve(settings, port=0) as url,
        httpx.AsyncClient(base_url=url, timeout=15, headers=bearer(admin_token)) as client,
    ):
        yield client


@pytest.fixture
def serve_gateway(settings: GatewaySettings, clean_bus: Bus, admin_token: str):  # type: ignore[no-untyped-def]
    """A gateway with some settings changed: ``async with serve_gateway(log_eof_grace=30) as client``
    (the client is an admin's; ``token=None`` sends none)."""

    @contextlib.asynccontextmanager
    async def start(token: str | None = admin_token, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
        changed = dataclasses.replace(settings, **changes)
        headers = bearer(token) if token else {}
        async with (
            serve(changed, port=0) as url,
            httpx.AsyncClient(base_url=url, timeout=15, headers=headers) as client,
        ):
            yield client

    return start


class Seed:
    """Writes what the scheduler and executors would: job rows, events, log chunks."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], bus: Bus) -> None:
        self.sessions = sessions
        self.bus = bus

    async def job(
        self,
        *,
        state: str = "queued",
        spec: v1.JobSpec | None = None,
        labels: dict[str, str] | None = None,
        attempt: int = 0,
        max_attempts: int = 1,
        artifacts: list[v1.Artifact] | None = None,
        job_id: str | None = None,
        **columns: Any,
    ) -> str:
        job_id = job_id or v1.new_job_id()
        spec = spec or v1.JobSpec(command=["echo", "hi"], labels=labels or {}, name=columns.get("name"))
        now = datetime.now(UTC)
        row = JobRow(
            id=job_id,
            owner=columns.pop("owner", "anonymous"),
            state=state,
            attempt=attempt,
            max_attempts=max_attempts,
            priority=0,
            spec=v1.encode(spec),
            created_at=now,
            artifacts=v1.encode(artifacts) if artifacts else None,
            cancel_requested=False,
            delete_requested=False,
            **columns,
        )
        async with self.sessions() as session, session.begin():
            session.add(row)
            await session.flush()
            session.add_all(JobLabelRow(job_id=job_id, key=k, value=v) for k, v in (labels or {}).items())
            session.add(TransitionRow(job_id=job_id, state=state, at=now, attempt=attempt))
        return job_id

    async def set_state(self, job_id: str, state: str, **columns: Any) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(update(JobRow).where(JobRow.id == job_id).values(state=state, **columns))
            session.add(TransitionRow(job_id=job_id, state=state, at=datetime.now(UTC)))

    async def remove(self, job_id: str) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(delete(TransitionRow).where(TransitionRow.job_id == job_id))
            await session.execute(delete(JobLabelRow).where(JobLabelRow.job_id == job_id))
            await session.execute(delete(JobRow).where(JobRow.id == job_id))

    async def event(
        self,
        job_id: str,
        state: str,
        *,
        previous: str | None = None,
        attempt: int = 0,
        node: str | None = None,
        queue_position: int | None = None,
    ) -> int:
        msg = v1.JobTransitioned(
            job_id=job_id,
            state=v1.JobState(state),
            previous=v1.JobState(previous) if previous else None,
            at=datetime.now(UTC),
            attempt=attempt,
            node=node,
            queue_position=queue_position,
        )
        ack = await self.bus.publish(sj.event_subject(job_id, state), msg)
        return int(ack.seq)

    async def progress(self, job_id: str, progress: Any, *, attempt: int = 1) -> int:
        msg = v1.JobProgress(job_id=job_id, attempt=attempt, at=datetime.now(UTC), progress=progress)
        ack = await self.bus.publish(sj.event_subject(job_id, "progress"), msg)
        return int(ack.seq)

    async def chunk(
        self,
        job_id: str,
        data: str,
        *,
        stream: str = "stdout",
        attempt: int = 1,
        offset: int = 0,
        eof: bool = False,
    ) -> int:
        msg = v1.LogChunk(job_id=job_id, attempt=attempt, stream=stream, offset=0, data=data, eof=eof)
        ack = await self.bus.publish(sj.log_subject(job_id, stream), msg)
        return int(ack.seq)

    async def commands(self) -> list[Any]:
        """Every job command now in JOBWIRE_CMD (what the gateway published; its audit records and
        token commands are left out, see ``access_commands``)."""
        return [m for m in await self._all_commands() if m.subject not in ACCESS_SUBJECTS]

    async def access_commands(self) -> list[Any]:
        return [m for m in await self._all_commands() if m.subject in ACCESS_SUBJECTS]

    async def audit(self) -> list[v1.AuditRecord]:
        """The audit records the gateway stored in JOBWIRE_CMD for the scheduler, oldest first."""
        out: list[v1.AuditRecord] = []
        for m in await self.access_commands():
            if m.subject == sj.cmd_subject("audit"):
                out.extend(v1.decode(m.data, v1.RecordAudit).records)
        return out

    async def _all_commands(self) -> list[Any]:
        info = await self.bus.js.stream_info(sj.CMD_STREAM)
        if not info.state.messages:
            return []
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            with contextlib.suppress(Exception):  # a message the scheduler fixture consumed meanwhile
                out.append(await self.bus.js.get_msg(sj.CMD_STREAM, seq))
        return out


@pytest.fixture
async def scheduler(clean_bus: Bus, nats_url: str, db_url: str) -> AsyncIterator[Any]:
    """The real scheduler on the gateway's database and bus, for what only it writes (tokens, the audit
    log); it also consumes job commands, so tests using it read jobs, not the command stream."""
    from jobwire.scheduler.service import Scheduler
    from jobwire.scheduler.settings import SchedulerSettings

    sched = Scheduler(SchedulerSettings(database_url=db_url, tick=0.1), BusSettings(nats_url=nats_url))
    await sched.start()
    yield sched
    await sched.stop()


@pytest.fixture
def seed(sessions: async_sessionmaker[AsyncSession], clean_bus: Bus) -> Seed:
    return Seed(sessions, clean_bus)


def sse_events(text: str) -> list[dict[str, str]]:
    """Parse an SSE body into its events (comments dropped)."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            fields[key] = fields[key] + "\n" + value if key in fields else value
        if fields:
            events.append(fields)
    return events


@pytest.fixture
def parse_sse():  # type: ignore[no-untyped-def]
    return sse_events
