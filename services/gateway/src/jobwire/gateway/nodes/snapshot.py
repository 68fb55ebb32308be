"""The registered nodes as the gateway knows them, kept in memory so a submit costs no query.

Loaded from the nodes table at start and every ``refresh`` seconds after (what the scheduler stored:
every node ever registered, up or down), and updated at once from the executors' heartbeats, so a node
that just appeared counts before the scheduler has stored it. A submit that would be refused is first
checked against a read of the table that began after the submit arrived, so a node the scheduler had
stored by then (and ``GET /v1/nodes`` shows) is never missed; refusals arriving together share a read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from jobwire.contracts import v1
from jobwire.contracts.v1 import feasibility
from jobwire.contracts.v1 import subjects as sj
from jobwire.store.models import NodeRow

log = logging.getLogger(__name__)
#: seconds of hearing no heartbeat that prove no node is up: the scheduler's default node timeout
#: (an executor beats every 2 s by default; one silent this long is down)
SILENCE_PROVES_EMPTY = 10.0
_BEATS: msgspec.json.Decoder[v1.NodeHeartbeat] = msgspec.json.Decoder(v1.NodeHeartbeat)


@dataclass
class Registered:
    """What placement needs of a node (``feasibility.Offer``)."""

    name: str
    backend: str
    capacity: v1.NodeCapacity
    labels: dict[str, str] = field(default_factory=dict)
    pool: str | None = None


class NodeSnapshot:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], nc: Client, *, refresh: float = 5.0
    ) -> None:
        self._sessions = sessions
        self._nc = nc
        self._refresh = refresh
        self.nodes: dict[str, Registered] = {}
        #: when the newest read of the table began (monotonic); a read started later is at least as fresh
        self.read_from = float("-inf")
        self._sub: Subscription | None = None
        #: when the heartbeat subscription began (monotonic; None: not following heartbeats)
        self._listening_since: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self.reload()
        try:
            self._sub = await self._nc.subscribe(sj.HEARTBEAT_SUBJECTS, cb=self._on_heartbeat)
            self._listening_since = time.monotonic()
        except Exception as e:  # e.g. a NATS user without that permission: the table alone still serves
            log.warning("node heartbeats cannot be followed (%s); new nodes count once stored", e)
        self._task = asyncio.create_task(self._keep_fresh(), name="node-snapshot")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    async def reload(self) -> None:
        """Every stored node; nodes known only from heartbeats so far are kept."""
        started = time.monotonic()
        try:
            async with self._sessions() as session:
                rows = list((await session.execute(select(NodeRow))).scalars())
        except Exception as e:  # the database is away: keep what we know, say so once per try
            log.warning("could not re-read the nodes table: %s", e)
            return
        for row in rows:
            self.nodes[row.name] = Registered(
                name=row.name,
                backend=row.backend,
                capacity=v1.decode(row.capacity, v1.NodeCapacity),
                labels=v1.decode(row.labels, dict[str, str]) if row.labels else {},
                pool=row.pool,
            )
        self.read_from = max(self.read_from, started)

    async def refusal(self, spec: v1.JobSpec, owner: str | None = None) -> feasibility.Refusal | None:
        """Why no registered node could ever run ``owner``'s ``spec`` (None: some node could, or none is
        known). A would-be refusal, and an acceptance only because no node is known yet, are checked
        against a read that began after the submit arrived: a gateway that started just before the
        scheduler stored the first nodes accepted jobs none of them could run (201, then queued for
        ever with the reason) while ``GET /v1/nodes`` already listed them. No node known after
        ``SILENCE_PROVES_EMPTY`` seconds of following heartbeats needs no read: a node the scheduler
        stored since would have been heard (a read per submit doubled the gateway's CPU per submit)."""
        arrived = time.monotonic()
        why = feasibility.refusal(list(self.nodes.values()), spec, owner)
        if why is None and (self.nodes or self._silence_proves_empty(arrived)):
            return why
        if self.read_from >= arrived:
            return why
        async with self._lock:  # one read at a time: the refusals that waited for it need no other
            if self.read_from < arrived:
                await self.reload()
        return feasibility.refusal(list(self.nodes.values()), spec, owner)

    def _silence_proves_empty(self, now: float) -> bool:
        since = self._listening_since
        return since is not None and now - since >= SILENCE_PROVES_EMPTY

    async def _keep_fresh(self) -> None:
        while True:
            await asyncio.sleep(self._refresh)
            await self.reload()

    async def _on_heartbeat(self, msg: Msg) -> None:
        try:
            beat = _BEATS.decode(msg.data)
            sj.check_token(beat.node, "node")
        except (msgspec.MsgspecError, ValueError):
            return  # the scheduler logs malformed heartbeats; one log line per process is enough
        known = self.nodes.get(beat.node)
        if (
            known is None
            or known.capacity != beat.capacity
            or known.backend != beat.backend
            or known.labels != beat.labels
            or known.pool != beat.pool
        ):
            self.nodes[beat.node] = Registered(beat.node, beat.backend, beat.capacity, beat.labels, beat.pool)
