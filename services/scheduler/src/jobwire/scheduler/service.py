"""The scheduler process: consumers, the single core task, the outbox, heartbeats and ticks.

Flow of a batch: fetch commands/reports -> one transaction (handlers, dispatch, outbox rows) ->
commit -> publish the outbox -> ack the messages. A crash anywhere before the ack redelivers the
messages; handlers are idempotent by job id, and the outbox is flushed again on start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, KeyValueConfig
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue
from nats.micro.service import Service
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime import micro, telemetry
from jobwire.runtime.bus import Bus, connect
from jobwire.runtime.settings import BusSettings
from jobwire.store.engine import make_engine, migrate, session_factory
from jobwire.store.models import JobRow, NodeRow, OutboxRow, now

from . import __version__
from .cluster import Cluster, NodeState, RunningJob
from .core import TRACER, Core, started_since
from .lease import Lease
from .placement import load_policy
from .settings import SchedulerSettings
from .txn import Txn

log = logging.getLogger(__name__)
S = v1.JobState
CMD_CONSUMER = "scheduler-cmd"
REPORT_CONSUMER = "scheduler-report"
HEARTBEAT_PERSIST_EVERY = 5.0


@dataclass
class Inbox:
    """Messages fetched but not yet processed, plus a signal for the fetcher to continue."""

    commands: list[Msg] = field(default_factory=list)
    reports: list[Msg] = field(default_factory=list)


class Scheduler:
    def __init__(self, settings: SchedulerSettings, bus_settings: BusSettings) -> None:
        self.settings = settings
        self.bus_settings = bus_settings
        self.cluster = Cluster()
        self.core = Core(settings, load_policy(settings.placement), self.cluster)
        self.bus: Bus | None = None
        self.engine: AsyncEngine | None = None
        self.sessions: async_sessionmaker[AsyncSession] | None = None
        self.service: Service | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.wakeup = asyncio.Event()
        self.inbox = Inbox()
        self.processed = asyncio.Condition()
        self.heartbeats: dict[str, v1.NodeHeartbeat] = {}
        #: the heartbeats taken for the current tick (their jobs' rows are loaded)
        self.beats: dict[str, v1.NodeHeartbeat] = {}
        self.persisted_beat: dict[str, float] = {}
        #: which job held each GPU when last written: a GPU taken or freed shows in GET /v1/nodes at
        #: once, while usage figures alone wait for the periodic write
        self.persisted_gpus: dict[str, list[tuple[int, str | None]]] = {}
        self.outbox_pending = True
        self.published: list[int] = []
        self.stats = {"batches": 0, "commands": 0, "reports": 0, "dispatched": 0}
        self._tick_due = True
        self.stopping = False
        self.lease: Lease | None = None
        #: "standby" until this replica holds the leader lease, "active" while it does, then "lost"
        self.role = "standby"
        self.lost = asyncio.Event()
        self.standby: asyncio.Task[None] | None = None
        self.keeper: asyncio.Task[None] | None = None
        self.heartbeat_sub: Any = None

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect and take the leader lease; when another replica holds it, stand by in the background
        (``status()["role"]``) and become active when it is free."""
        telemetry.setup_tracing("jobwire-scheduler")
        if self.settings.migrate:
            await migrate(self.settings.database_url)
        self.engine = make_engine(self.settings.database_url)
        self.sessions = session_factory(self.engine)
        self.bus = await connect(self.bus_settings, name="jobwire-scheduler", declare=True)
        self.lease = Lease(await self.lease_bucket(), self.settings.instance, ttl=self.settings.lease_ttl)
        self.service = await micro.register(
            self.bus.nc,
            name="jobwire-scheduler",
            version=__version__,
            description="places jobs on nodes and tracks their state",
            status=self.status,
        )
        if await self.lease.try_acquire():
            await self.activate()
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
        assert self.lease is not None
        await self.lease.wait_acquire()
        log.info("scheduler taking over: the leader lease is ours")
        await self.activate()

    async def activate(self) -> None:
        """Only the lease holder consumes commands and reports and runs the loops."""
        assert self.bus is not None and self.lease is not None
        self.role = "active"
        await self.rebuild()
        await self.flush_outbox()
        cmd_sub = await self.pull(sj.CMD_STREAM, sj.CMD_SUBJECTS, CMD_CONSUMER)
        rep_sub = await self.pull(sj.REPORT_STREAM, sj.REPORT_SUBJECTS, REPORT_CONSUMER)
        self.heartbeat_sub = await self.bus.nc.subscribe(sj.HEARTBEAT_SUBJECTS, cb=self.on_heartbeat)
        self.tasks = [
            asyncio.create_task(self.fetch_loop(cmd_sub, "commands")),
            asyncio.create_task(self.fetch_loop(rep_sub, "reports")),
            asyncio.create_task(self.ticker()),
            asyncio.create_task(self.core_loop()),
        ]
        self.keeper = asyncio.create_task(self.keep_lease(), name="lease")
        log.info("scheduler up: %d nodes, %d queued", len(self.cluster.nodes), len(self.cluster.queued_on))

    async def keep_lease(self) -> None:
        """Losing the lease stops all processing at once; the process then exits (``lost``) and comes
        back as a standby, since its in-memory view may already be stale."""
        assert self.lease is not None
        await self.lease.keep()
        if self.stopping:
            return
        log.error("scheduler lost the leader lease: stopping all processing")
        self.role = "lost"
        for t in self.tasks:
            t.cancel()
        await asyncio.wait(self.tasks, timeout=5)
        self.lost.set()

    async def stop(self) -> None:
        self.stopping = True
        extra = [t for t in (self.standby, self.keeper) if t is not None]
        for t in [*self.tasks, *extra]:
            t.cancel()
        if self.tasks or extra:
            _, stuck = await asyncio.wait([*self.tasks, *extra], timeout=5)
            for t in stuck:
                log.warning("task %s did not stop within 5 s", t.get_name())
        if self.service is not None:
            with contextlib.suppress(Exception):
                await self.service.stop()
        if self.lease is not None and self.role == "active":
            await self.lease.release()
        if self.bus is not None:
            await self.bus.close()
        if self.engine is not None:
            await self.engine.dispose()

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
            **self.stats,
        }

    # --- rebuilding the in-memory view ---------------------------------------------------------
    async def rebuild(self) -> None:
        """Load nodes and active jobs, so a restarted scheduler carries on where it stopped."""
        assert self.sessions is not None
        self.cluster = Cluster()
        self.core.cluster = self.cluster
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
                    instance=saved.instance,
                )
            active = [s.value for s in v1.ACTIVE]
            rows = (await session.execute(select(JobRow).where(JobRow.state.in_(active)))).scalars()
            mono = time.monotonic()
            for row in rows:
                spec = v1.decode(row.spec, v1.JobSpec)
                if row.state == S.QUEUED.value:
                    node = row.node if row.node in self.cluster.nodes else None
                    self.cluster.enqueue(node, self.core.queued_job(row, spec))
                elif row.node in self.cluster.nodes and self.core.on_node(row):
                    run = RunningJob(
                        row.id,
                        row.attempt,
                        spec.resources,
                        self.core.expected(spec),
                        mono - started_since(row, at),
                        row.timeout,
                        running=row.state == S.RUNNING.value,
                    )
                    self.cluster.start(row.node, run)

    # --- heartbeats ----------------------------------------------------------------------------
    async def on_heartbeat(self, msg: Msg) -> None:
        try:
            beat = v1.decode(msg.data, v1.NodeHeartbeat)
            sj.check_token(beat.node, "node")
        except (ValueError, Exception) as e:
            log.warning("ignored malformed heartbeat on %s: %s", msg.subject, e)
            return
        self.heartbeats[beat.node] = beat
        node = self.cluster.nodes.get(beat.node)
        if node is not None:
            node.last_seen = time.monotonic()
        if node is None or not node.up or node.instance != beat.instance:
            self.wake()

    # --- the loops -----------------------------------------------------------------------------
    def wake(self) -> None:
        self.wakeup.set()

    async def fetch_loop(self, sub: Any, kind: str) -> None:
        while not self.stopping:
            try:
                msgs = await sub.fetch(batch=self.settings.batch_size, timeout=1)
            except TimeoutError:
                continue
            except Exception as e:
                log.warning("fetch %s: %s", kind, e)
                await asyncio.sleep(0.5)
                continue
            async with self.processed:
                getattr(self.inbox, kind).extend(msgs)
                self.wake()
                await self.processed.wait_for(lambda: not getattr(self.inbox, kind))

    async def ticker(self) -> None:
        while not self.stopping:
            await asyncio.sleep(self.settings.tick)
            self._tick_due = True
            self.wake()

    async def core_loop(self) -> None:
        while not self.stopping:
            await self.wakeup.wait()
            self.wakeup.clear()
            commands, reports = self.inbox.commands, self.inbox.reports
            self.inbox = Inbox()
            tick, self._tick_due = self._tick_due, False
            try:
                await self.process(commands, reports, tick)
            except Exception:
                log.exception("batch failed; rebuilding from the database, messages will be redelivered")
                for m in commands + reports:
                    with contextlib.suppress(Exception):
                        await m.nak(delay=1)
                await asyncio.sleep(0.5)
                with contextlib.suppress(Exception):
                    await self.rebuild()
            async with self.processed:
                self.processed.notify_all()

    # --- one batch -----------------------------------------------------------------------------
    async def process(self, commands: list[Msg], reports: list[Msg], tick: bool) -> None:
        assert self.sessions is not None
        decoded_cmds = [(m, self.decode(m, v1.Command)) for m in commands]
        decoded_reps = [(m, self.decode(m, v1.Report)) for m in reports]
        async with self.sessions() as session, session.begin():
            txn = Txn(session)
            if self.published:
                await session.execute(delete(OutboxRow).where(OutboxRow.id.in_(self.published)))
                self.published = []
            ids = {c.job_id for _, c in decoded_cmds if c is not None}
            ids |= {r.job_id for _, r in decoded_reps if r is not None}
            if tick:
                ids |= await self.tick_ids(session)
            ids |= self.core.dispatch_candidates()
            await txn.load(ids)
            for msg, cmd in decoded_cmds:
                if cmd is not None:
                    self.command(txn, cmd, msg)
            for _, rep in decoded_reps:
                if rep is not None:
                    self.core.report(txn, rep)
            if tick:
                await self.tick(txn)
            missing = self.core.dispatch_candidates() - set(txn.rows)
            if missing:
                await txn.load(missing)
            dispatched_before = len(txn.outbox)
            self.core.dispatch(txn)
            self.stats["dispatched"] += sum(
                1 for r in txn.outbox[dispatched_before:] if r.subject.endswith(".run")
            )
            for row, _ in txn.deleted:
                await session.delete(row)
        self.stats["batches"] += 1
        self.stats["commands"] += len(commands)
        self.stats["reports"] += len(reports)
        for row, artifacts in txn.deleted:
            await self.purge(row.id, artifacts)
        if txn.outbox:
            await self.publish([(r.id, r.subject, r.payload, r.msg_id, r.headers) for r in txn.outbox])
        for m in commands + reports:
            await m.ack()

    def decode(self, msg: Msg, tp: Any) -> Any:
        try:
            return v1.decode(msg.data, tp)
        except Exception as e:
            log.error("dropping undecodable message on %s: %s", msg.subject, e)
            asyncio.get_running_loop().create_task(msg.term())
            return None

    def command(self, txn: Txn, cmd: v1.Command, msg: Msg) -> None:
        if isinstance(cmd, v1.SubmitJob):
            with telemetry.span_from(msg.headers, TRACER, "scheduler.submit", job_id=cmd.job_id):
                self.core.submit(txn, cmd, telemetry.inject())
        elif isinstance(cmd, v1.CancelJob):
            self.core.cancel(txn, cmd.job_id, cmd.reason)
        elif isinstance(cmd, v1.DeleteJob):
            self.core.delete(txn, cmd.job_id)
        elif isinstance(cmd, v1.HoldJob):
            self.core.hold(txn, cmd.job_id, cmd.reason)
        elif isinstance(cmd, v1.ReleaseJob):
            self.core.release(txn, cmd.job_id)

    # --- periodic work -------------------------------------------------------------------------
    async def tick_ids(self, session: AsyncSession) -> set[str]:
        """Jobs the tick may touch: on nodes going down, pending ones, overdue ones, stale runs."""
        ids: set[str] = set(self.cluster.pending)
        limit = time.monotonic() - self.settings.node_timeout
        for node in self.cluster.nodes.values():
            if node.up and node.last_seen < limit:
                ids |= set(node.queued) | set(node.running)
        ids |= {job_id for job_id, _ in self.core.overdue(time.monotonic())}
        self.beats, self.heartbeats = self.heartbeats, {}
        for beat in self.beats.values():
            ids |= {r.job_id for r in beat.running}
        return ids

    async def tick(self, txn: Txn) -> None:
        mono = time.monotonic()
        await self.apply_heartbeats(txn, mono)
        limit = mono - self.settings.node_timeout
        for node in self.cluster.nodes.values():
            if node.up and node.last_seen < limit:
                log.warning("node %s missed heartbeats for %.0fs: down", node.name, mono - node.last_seen)
                self.core.node_down(txn, node)
                await self.save_node_state(txn, node.name, "down")
        for job_id, over in self.core.overdue(mono):
            self.core.backstop(txn, job_id, over)
        if self.outbox_pending:
            await self.flush_outbox()

    async def apply_heartbeats(self, txn: Txn, mono: float) -> None:
        beats, self.beats = self.beats, {}
        came_up = False
        for beat in beats.values():
            node = self.cluster.nodes.get(beat.node)
            changed = (
                node is None
                or not node.up
                or node.instance != beat.instance
                or node.capacity != beat.capacity
                or node.labels != beat.labels
                or node.pool != beat.pool
            )
            if node is None:
                node = NodeState(name=beat.node, backend=beat.backend, capacity=beat.capacity)
                self.cluster.nodes[beat.node] = node
            came_up |= not node.up or changed
            node.backend, node.capacity, node.labels, node.pool = (
                beat.backend,
                beat.capacity,
                beat.labels,
                beat.pool,
            )
            node.up, node.instance, node.last_seen = True, beat.instance, mono
            holders = [(g.index, g.job_id) for g in beat.gpus]
            gpus_changed = holders != self.persisted_gpus.get(beat.node, [])
            if (
                changed
                or gpus_changed
                or mono - self.persisted_beat.get(beat.node, 0.0) > HEARTBEAT_PERSIST_EVERY
            ):
                await self.save_node(txn, beat)
                self.persisted_beat[beat.node] = mono
                self.persisted_gpus[beat.node] = holders
            self.reconcile(txn, beat)
        if came_up:
            self.core.node_up(txn)

    def reconcile(self, txn: Txn, beat: v1.NodeHeartbeat) -> None:
        """Runs a node reports that are no longer ours (stale attempts, deleted jobs) are stopped."""
        for ref in beat.running:
            row = txn.rows.get(ref.job_id)
            current = row is not None and row.node == beat.node and row.attempt == ref.attempt
            if current and row is not None and self.core.on_node(row):
                continue
            if current and row is not None and row.state == S.LOST.value:
                pass  # lost then came back with no attempt left: the run is stale
            elif current:
                continue  # finished moments ago; the executor is still reporting it
            if (ref.job_id, ref.attempt) not in self.core.stop_asked:
                log.info(
                    "node %s still runs %s attempt %s: stopping the stale run",
                    beat.node,
                    ref.job_id,
                    ref.attempt,
                )
                self.core.ask_stop(txn, ref.job_id, ref.attempt, beat.node, S.LOST, "stale attempt")

    async def save_node(self, txn: Txn, beat: v1.NodeHeartbeat) -> None:
        row = await txn.session.get(NodeRow, beat.node)
        if row is None:
            row = NodeRow(name=beat.node, registered_at=txn.at)
            txn.session.add(row)
        row.backend, row.pool, row.state = beat.backend, beat.pool, "up"
        row.instance, row.version = beat.instance, beat.version
        row.capacity = v1.encode(beat.capacity)
        row.labels = v1.encode(beat.labels)
        row.gpus = v1.encode(beat.gpus)
        row.last_heartbeat = beat.at

    async def save_node_state(self, txn: Txn, name: str, state: str) -> None:
        row = await txn.session.get(NodeRow, name)
        if row is not None:
            row.state = state

    # --- after the commit ----------------------------------------------------------------------
    async def publish(self, rows: list[tuple[int, str, bytes, str | None, bytes | None]]) -> None:
        """Publish committed outbox rows in order; failures stay in the outbox for the next tick."""
        assert self.bus is not None
        sent: list[int] = []
        try:
            futures = [
                self.bus.js.publish(
                    subject,
                    payload,
                    headers={
                        sj.MSG_ID_HEADER: msg_id or str(row_id),
                        **(v1.decode(hdrs, dict[str, str]) if hdrs else {}),
                    },
                )
                for row_id, subject, payload, msg_id, hdrs in rows
            ]
            results = await asyncio.gather(*futures, return_exceptions=True)
            for (row_id, subject, *_), result in zip(rows, results, strict=True):
                if isinstance(result, BaseException):
                    log.warning("publish to %s failed (%s); kept in the outbox", subject, result)
                    self.outbox_pending = True
                else:
                    sent.append(row_id)
        finally:
            self.published.extend(sent)

    async def flush_outbox(self) -> None:
        """Publish whatever a previous run or a failed publish left in the outbox."""
        assert self.sessions is not None
        self.outbox_pending = False
        async with self.sessions() as session:
            result = await session.execute(select(OutboxRow).order_by(OutboxRow.id).limit(10_000))
            rows = [(r.id, r.subject, r.payload, r.msg_id, r.headers) for r in result.scalars()]
        rows = [r for r in rows if r[0] not in set(self.published)]
        if rows:
            log.info("publishing %d outbox messages left from before", len(rows))
            await self.publish(rows)

    async def purge(self, job_id: str, artifacts: list[str]) -> None:
        """Remove a deleted job's logs, events and artifacts from JetStream."""
        assert self.bus is not None
        try:
            await self.bus.js.purge_stream(sj.LOG_STREAM, subject=sj.job_logs_filter(job_id))
            await self.bus.js.purge_stream(sj.EVT_STREAM, subject=sj.job_events_filter(job_id))
            store = await self.bus.artifacts()
            for name in artifacts:
                with contextlib.suppress(Exception):
                    await store.delete(sj.artifact_object(job_id, name))
        except Exception as e:
            log.warning("could not purge everything of deleted job %s: %s", job_id, e)
