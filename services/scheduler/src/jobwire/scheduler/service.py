"""The scheduler process: leadership and lifecycle.

One replica holds the leader lease and runs the batch pipeline (``pipeline``), which applies node
liveness (``liveness``) and publishes through the outbox relay (``relay``); the others stand by.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from datetime import datetime, timedelta
from typing import Any

import msgspec
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, KeyValueConfig
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue
from nats.micro.service import Service
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime import micro, telemetry
from jobwire.runtime.bus import Bus, connect
from jobwire.runtime.heap import freeze_startup_heap, thaw_heap
from jobwire.runtime.settings import BusSettings
from jobwire.store import jobrecs
from jobwire.store.engine import make_engine, migrate, session_factory
from jobwire.store.jobrecs import JobRec
from jobwire.store.models import ArrayRow, JobRow, NodeRow, now

from . import __version__, gang
from .access import Access
from .arrays import Arrays
from .cluster import Cluster, NodeState, RunningJob, shared
from .core import Core, started_since
from .fairshare import USAGE_HALF_LIVES, FairShare, units
from .lease import Lease
from .pipeline import Pipeline
from .placement import load_policy
from .relay import Relay
from .settings import SchedulerSettings
from .waits import still_unmet

log = logging.getLogger(__name__)
S = v1.JobState
CMD_CONSUMER = "scheduler-cmd"
REPORT_CONSUMER = "scheduler-report"
#: seconds between tries to take over again while NATS or the database is unreachable
RETRY_WAIT = 1.0
#: rows per page as fair share's recent usage is read back on start
USAGE_PAGE = 2000


class LeaseLost(RuntimeError):
    """The leader lease could not be renewed while the view was being rebuilt: another replica may hold it."""


class _Ran(msgspec.Struct):
    """What fair share reads of an ended job's spec: its resources (the rest is skipped unparsed)."""

    resources: v1.Resources = msgspec.field(default_factory=v1.Resources)


class Scheduler:
    def __init__(self, settings: SchedulerSettings, bus_settings: BusSettings) -> None:
        self.settings = settings
        self.bus_settings = bus_settings
        self.cluster = Cluster(FairShare(half_life=settings.fairshare_half_life))
        self.core = Core(settings, load_policy(settings.placement), self.cluster)
        self.bus: Bus | None = None
        self.engine: AsyncEngine | None = None
        self.sessions: async_sessionmaker[AsyncSession] | None = None
        self.service: Service | None = None
        self.relay: Relay | None = None
        self.pipeline: Pipeline | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.stopping = False
        self.lease: Lease | None = None
        #: "standby" until this replica holds the leader lease, "active" while it does, "lost" for the
        #: moment it stops after losing it, then "standby" again
        self.role = "standby"
        self.lost = asyncio.Event()
        self.standby: asyncio.Task[None] | None = None
        self.keeper: asyncio.Task[None] | None = None
        self.heartbeat_sub: Any = None
        #: how often this replica lost the lease and went back to standing by
        self.losses = 0

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect and take the leader lease; when another replica holds it, stand by in the background
        (``status()["role"]``) and become active when it is free."""
        if telemetry.wanted(self.settings.tracing):
            telemetry.setup_tracing("jobwire-scheduler")
        if self.settings.migrate:
            await migrate(self.settings.database_url)
        self.engine = make_engine(self.settings.database_url, sqlite_inline=True)
        self.sessions = session_factory(self.engine)
        self.bus = await connect(self.bus_settings, name="jobwire-scheduler", declare=True)
        self.relay = Relay(self.bus, self.sessions)
        self.lease = Lease(await self.lease_bucket(), self.settings.instance, ttl=self.settings.lease_ttl)
        self.service = await micro.register(
            self.bus.nc,
            name="jobwire-scheduler",
            version=__version__,
            description="places jobs on nodes and tracks their state",
            status=self.status,
        )
        if await self.lease.try_acquire():
            try:
                await self.activate()
            except LeaseLost:
                log.warning("scheduler lost the leader lease while rebuilding its view; standing by")
                await self.deactivate()
                self.role = "standby"
                self.standby = asyncio.create_task(self.stand_by(), name="standby")
        else:
            log.info("scheduler standing by: another replica holds the leader lease")
            self.standby = asyncio.create_task(self.stand_by(), name="standby")

    async def lease_bucket(self) -> KeyValue:
        assert self.bus is not None
        try:
            return await self.bus.js.key_value(self.settings.lease_bucket)
        except NotFoundError:
            config = KeyValueConfig(
                bucket=self.settings.lease_bucket,
                ttl=self.settings.lease_ttl,
                replicas=self.bus_settings.stream_replicas,
            )
            return await self.bus.js.create_key_value(config)

    async def stand_by(self) -> None:
        """Wait for the lease and become active; an outage (NATS or the database gone) on the way is
        waited out and retried, never fatal: nats-py reconnects underneath."""
        assert self.lease is not None
        while not self.stopping:
            try:
                await self.lease.wait_acquire()
                log.info("scheduler taking over: the leader lease is ours")
                await self.activate()
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("scheduler could not take over yet (%s: %s); retrying", type(e).__name__, e)
                await self.deactivate()
                self.role = "standby"
                await asyncio.sleep(RETRY_WAIT)

    async def activate(self) -> None:
        """Only the lease holder consumes commands and reports and runs the loops."""
        assert self.bus is not None and self.lease is not None
        assert self.sessions is not None and self.relay is not None
        self.role = "active"
        await self.rebuild()
        await self.relay.flush()
        access = Access(self.bus)
        assert self.engine is not None
        self.pipeline = Pipeline(
            self.settings, self.sessions, self.engine, self.core, self.relay, access, self.rebuild
        )
        cmd_sub = await self.pull(sj.CMD_STREAM, sj.CMD_SUBJECTS, CMD_CONSUMER)
        rep_sub = await self.pull(sj.REPORT_STREAM, sj.REPORT_SUBJECTS, REPORT_CONSUMER)
        self.heartbeat_sub = await self.bus.nc.subscribe(
            sj.HEARTBEAT_SUBJECTS, cb=self.pipeline.liveness.on_heartbeat
        )
        self.tasks = self.pipeline.tasks(cmd_sub, rep_sub)
        self.keeper = asyncio.create_task(self.keep_lease(), name="lease")
        log.info("scheduler up: %d nodes, %d queued", len(self.cluster.nodes), len(self.cluster.queued_on))
        # what exists now (modules, SQLAlchemy's and the bus's state, the rebuilt view) lives on; a full
        # collection walking it stopped the one batch loop for 150-190 ms under load (``runtime.heap``)
        frozen = freeze_startup_heap()
        log.debug("scheduler active; %d objects kept out of the collector's walks", frozen)

    async def deactivate(self) -> None:
        """Stop every loop of the active role (their in-memory view may be stale) and drop the
        heartbeat subscription; the next ``activate`` rebuilds from the database."""
        if self.pipeline is not None:
            self.pipeline.stopping = True
        for t in self.tasks:
            t.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=5)
        self.tasks = []
        if self.pipeline is not None:
            await self.pipeline.close()
        if self.heartbeat_sub is not None:
            with contextlib.suppress(Exception):
                await self.heartbeat_sub.unsubscribe()
            self.heartbeat_sub = None

    async def keep_lease(self) -> None:
        """Losing the lease (a NATS outage longer than the lease period, or another replica's write)
        stops all processing at once; the replica then stands by and takes the lease again, with a view
        rebuilt from the database, as soon as it is free (``lost`` is set, ``losses`` counts how often)."""
        assert self.lease is not None
        await self.lease.keep()
        if self.stopping:
            return
        log.error("scheduler lost the leader lease: stopping all processing, standing by")
        self.role = "lost"
        await self.deactivate()
        self.role = "standby"
        self.losses += 1
        self.lost.set()
        if not self.stopping:
            self.standby = asyncio.create_task(self.stand_by(), name="standby")

    async def stop(self) -> None:
        self.stopping = True
        if self.pipeline is not None:
            self.pipeline.stopping = True
        extra = [t for t in (self.standby, self.keeper) if t is not None]
        for t in [*self.tasks, *extra]:
            t.cancel()
        if self.tasks or extra:
            _, stuck = await asyncio.wait([*self.tasks, *extra], timeout=5)
            for t in stuck:
                log.warning("task %s did not stop within 5 s", t.get_name())
        if self.pipeline is not None:
            await self.pipeline.close()
        if self.service is not None:
            with contextlib.suppress(Exception):
                await self.service.stop()
        if self.lease is not None and self.role == "active":
            await self.lease.release()
        if self.bus is not None:
            await self.bus.close()
        if self.engine is not None:
            await self.engine.dispose()
        thaw_heap()

    async def pull(self, stream: str, subject: str, durable: str) -> Any:
        """A fresh durable consumer: what a crashed predecessor fetched but never acked comes back at once.

        The streams are work queues, so every message still in them is unacknowledged; recreating the
        consumer redelivers them now instead of after ``ack_wait`` (a report held that long would let the
        timeout backstop misjudge a job that had in fact finished).
        """
        assert self.bus is not None
        with contextlib.suppress(NotFoundError):
            await self.bus.js.delete_consumer(stream, durable)
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=60,
            max_ack_pending=20_000,
            max_deliver=-1,
        )
        return await self.bus.js.pull_subscribe(subject, durable=durable, stream=stream, config=config)

    def status(self) -> dict[str, Any]:
        return {
            "nodes": {
                n.name: {"up": n.up, "queued": len(n.queued), "running": len(n.running)}
                for n in self.cluster.nodes.values()
            },
            "pending": len(self.cluster.pending),
            "role": self.role,
            "instance": self.settings.instance,
            **(self.pipeline.stats if self.pipeline is not None else Pipeline.no_stats()),
        }

    # --- rebuilding the in-memory view ---------------------------------------------------------
    async def renew_lease(self) -> None:
        """Called between pages of a rebuild. Before the lease keeper starts (``activate``) a rebuild
        of tens of thousands of active jobs, or of a busy hour's ended runs, outlived the lease period
        and the lease was lost as the scheduler came up: it is renewed here when due. While the keeper
        runs (a rebuild after a failed batch) this only lets it run."""
        keeper_runs = self.keeper is not None and not self.keeper.done()
        if self.lease is None or keeper_runs or not self.lease.renewal_due():
            await asyncio.sleep(0)
            return
        if not await self.lease.refresh():
            raise LeaseLost("the leader lease could not be renewed while rebuilding")

    async def rebuild(self) -> None:
        """Load nodes and active jobs, so a restarted scheduler carries on where it stopped."""
        assert self.sessions is not None
        self.cluster = Cluster(self.cluster.fair)  # recent usage outlives a rebuild
        self.core.cluster = self.cluster
        self.core.arrays = Arrays(self.cluster)
        at = now()
        async with self.sessions() as session:
            for saved in (await session.execute(select(NodeRow))).scalars():
                self.cluster.nodes[saved.name] = NodeState(
                    name=saved.name,
                    backend=saved.backend,
                    capacity=v1.decode(saved.capacity, v1.NodeCapacity),
                    labels=v1.decode(saved.labels, dict[str, str]) if saved.labels else {},
                    pool=saved.pool,
                    up=saved.state == "up",
                    down_since=saved.last_heartbeat if saved.state != "up" else None,
                    instance=saved.instance,
                )
            await self.rebuild_arrays(session)
            await self.rebuild_usage(session, at)
            mono = time.monotonic()
            # page by page: the active rows are never all in memory at once (issue 11); the few that
            # name dependencies wait until every page is read, to learn which still wait
            deferred: list[tuple[JobRec, v1.JobSpec]] = []
            async for page in jobrecs.pages_in_states(session, [s.value for s in v1.ACTIVE]):
                await self.renew_lease()
                for row in page:
                    spec = v1.decode(row.spec, v1.JobSpec)
                    if row.array_id is not None and row.array_id in self.core.arrays.open:
                        self.core.arrays.open[row.array_id].live.add(row.id)
                    if spec.after and row.state in (S.QUEUED.value, S.HELD.value):
                        deferred.append((row, spec))
                    else:
                        self.rebuild_job(row, spec, mono, at)
            waiting = await self.rebuild_waits(session, deferred)
            for row, spec in deferred:
                if row.id not in waiting:  # in no queue until its dependencies are met
                    self.rebuild_job(row, spec, mono, at)

    def rebuild_job(self, row: JobRec, spec: v1.JobSpec, mono: float, at: datetime) -> None:
        """One active job back in the view: queued on its node (or pending), or holding its slot."""
        if row.state == S.QUEUED.value:
            # a job pinned to a node that is down waits pending, shown on that node
            known = self.cluster.nodes.get(row.node or "")
            node = row.node if known is not None and known.up else None
            self.cluster.enqueue(node, self.core.queued_job(row, spec))
        elif row.gang is not None and self.core.on_node(row) and spec.resources.nodes > 1:
            self.rebuild_gang(row, spec, mono - started_since(row, at))
        elif row.node in self.cluster.nodes and self.core.on_node(row):
            run = RunningJob(
                row.id,
                row.attempt,
                shared(spec.resources),
                self.core.expected(spec),
                mono - started_since(row, at),
                row.timeout,
                running=row.state == S.RUNNING.value,
                owner=sys.intern(row.owner),
            )
            self.cluster.start(row.node, run)

    async def rebuild_usage(self, session: AsyncSession, at: datetime) -> None:
        """On start, fair share's recent usage from the runs that ended within ``USAGE_HALF_LIVES``
        half-lives (one query; a rebuild after a failed batch keeps the usage it has). What still runs
        is counted again as the view is rebuilt."""
        fair = self.cluster.fair
        if fair.at is not None or fair.half_life <= 0:
            return
        since = at - timedelta(seconds=USAGE_HALF_LIVES * fair.half_life)
        query = select(JobRow.owner, JobRow.spec, JobRow.started_at, JobRow.dispatched_at, JobRow.ended_at)
        # streamed a page at a time, each spec read for its resources only: a busy site ends hundreds of
        # thousands of runs within the window, which were all held at once, every spec decoded whole
        recent = query.where(JobRow.ended_at > since).execution_options(yield_per=USAGE_PAGE)
        ended = await session.stream(recent)
        async for page in ended.partitions():
            await self.renew_lease()
            for owner, spec, started, dispatched, ended_at in page:
                begin = started or dispatched
                if begin is None or ended_at is None:
                    continue  # never ran
                res = v1.decode(spec, _Ran).resources
                age_end, age_start = (at - ended_at).total_seconds(), (at - begin).total_seconds()
                fair.add_past(owner, units(res), age_end, age_start)
        fair.at = time.monotonic()

    def rebuild_gang(self, row: JobRec, spec: v1.JobSpec, since: float) -> None:
        """A running gang's ranks that have not ended, each holding its slot again on its node."""
        kept = gang.read_record(row.gang or b"{}")
        left = [n for r, n in enumerate(kept.nodes) if r not in kept.done and n in self.cluster.nodes]
        runs = [
            RunningJob(
                row.id,
                row.attempt,
                shared(spec.resources),
                self.core.expected(spec),
                since,
                row.timeout,
                running=row.state == S.RUNNING.value,
                owner=sys.intern(row.owner),
            )
            for _ in left
        ]
        if runs:
            self.cluster.start_gang(left, runs)
            self.cluster.gang_runs[row.id].nodes = list(kept.nodes)  # rank numbers stay those dispatched

    async def rebuild_arrays(self, session: AsyncSession) -> None:
        """Open arrays (not ended), with which of their tasks ended other than ``succeeded``."""
        arrays = self.core.arrays
        for saved in (await session.execute(select(ArrayRow).where(ArrayRow.ended_at.is_(None)))).scalars():
            arrays.open[saved.id] = Arrays.state_of(saved)
        if not arrays.open:
            return
        ended = [s.value for s in (*v1.TERMINAL, S.LOST) if s is not S.SUCCEEDED]
        ended_tasks = await session.execute(
            select(JobRow.array_id, JobRow.id).where(
                JobRow.array_id.in_(list(arrays.open)), JobRow.state.in_(ended)
            )
        )
        for array_id, task_id in ended_tasks:
            if array_id is not None:
                arrays.open[array_id].unsuccessful.add(task_id)

    async def rebuild_waits(self, session: AsyncSession, rows: list[tuple[JobRec, v1.JobSpec]]) -> set[str]:
        """The queued and held jobs (``rows``: those naming dependencies) that still wait for them, back
        in ``cluster.waits``; the dependencies' states are read in one query per 500 of them."""
        after = {row.id: spec.after for row, spec in rows}
        wanted = sorted({d.job for deps in after.values() for d in deps})
        ended: dict[str, bool] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            query = select(JobRow.id, JobRow.state, JobRow.ended_at).where(JobRow.id.in_(chunk))
            for job_id, state, ended_at in await session.execute(query):
                ended[job_id] = v1.is_finished(S(state), attempts_left=ended_at is None)
        for array_id in wanted:
            if array_id in self.core.arrays.open:  # an array with tasks still to end
                ended[array_id] = False
        for job_id, deps in after.items():
            unmet = still_unmet(deps, ended)
            if unmet:
                self.cluster.waits.add(job_id, unmet)
        return set(self.cluster.waits.unmet)
