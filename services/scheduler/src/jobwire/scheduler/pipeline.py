"""The batch pipeline: fetch commands and reports, apply them in one transaction, publish, then ack.

Flow of a batch: fetch commands/reports -> one transaction (handlers, dispatch, outbox rows) ->
commit -> publish the outbox -> ack the messages. A crash anywhere before the ack redelivers the
messages; handlers are idempotent by job id, and the outbox is flushed again on start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime import metrics, telemetry
from jobwire.store import SQLITE_BEGIN, audit, quotas
from jobwire.store.models import WorkflowRow, now

from .access import Access
from .core import TRACER, Core
from .fairshare import SHARES_TTL
from .liveness import Liveness
from .relay import Relay
from .settings import SchedulerSettings
from .txn import Txn

log = logging.getLogger(__name__)
ACCESS = (v1.RecordAudit, v1.CreateToken, v1.RevokeToken, v1.TouchTokens)


@dataclass
class Inbox:
    """Messages fetched but not yet processed."""

    commands: list[Msg] = field(default_factory=list)
    reports: list[Msg] = field(default_factory=list)


class Pipeline:
    """The single core task and its feeders; only the leader runs one."""

    def __init__(
        self,
        settings: SchedulerSettings,
        sessions: async_sessionmaker[AsyncSession],
        engine: AsyncEngine,
        core: Core,
        relay: Relay,
        access: Access,
        rebuild: Callable[[], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.engine = engine
        #: the one connection every batch writes through (None until the first batch, or after a failure)
        self.conn: AsyncConnection | None = None
        self.core = core
        self.relay = relay
        self.access = access
        self.rebuild = rebuild
        self.liveness = Liveness(settings, core, self.wake)
        self.wakeup = asyncio.Event()
        self.inbox = Inbox()
        self.processed = asyncio.Condition()
        self.stats = self.no_stats()
        self.tick_due = True
        self.stopping = False
        #: messages in the last batch: a busy bus (many) makes the next batch linger to gather more
        self.last_batch = 0
        #: the cause of the failing batches, logged once (None while batches succeed), and how many
        self.failing: str | None = None
        self.failures = 0

    @staticmethod
    def no_stats() -> dict[str, int]:
        return {"batches": 0, "commands": 0, "reports": 0, "dispatched": 0}

    def wake(self) -> None:
        self.wakeup.set()

    def tasks(self, cmd_sub: Any, rep_sub: Any) -> list[asyncio.Task[None]]:
        return [
            asyncio.create_task(self.fetch_loop(cmd_sub, "commands")),
            asyncio.create_task(self.fetch_loop(rep_sub, "reports")),
            asyncio.create_task(self.ticker()),
            asyncio.create_task(self.core_loop()),
        ]

    # --- the loops -----------------------------------------------------------------------------
    async def fetch_loop(self, sub: Any, kind: str) -> None:
        """Fetch while the core works on the previous batch; stop fetching while a batch's worth waits."""
        limit = self.settings.batch_size
        while not self.stopping:
            try:
                msgs = await sub.fetch(batch=limit, timeout=1)
            except TimeoutError:
                continue
            except Exception as e:
                log.warning("fetch %s: %s", kind, e)
                await asyncio.sleep(0.5)
                continue
            async with self.processed:
                getattr(self.inbox, kind).extend(msgs)
                self.wake()
                await self.processed.wait_for(lambda: len(getattr(self.inbox, kind)) < limit)

    async def ticker(self) -> None:
        while not self.stopping:
            await asyncio.sleep(self.settings.tick)
            self.tick_due = True
            self.wake()

    async def core_loop(self) -> None:
        while not self.stopping:
            await self.wakeup.wait()
            if self.should_linger():
                # a few ms more gather what concurrent clients and executors are sending
                await asyncio.sleep(self.settings.linger)
            self.wakeup.clear()
            commands, reports = self.inbox.commands, self.inbox.reports
            self.inbox = Inbox()
            tick, self.tick_due = self.tick_due, False
            began = time.perf_counter()
            if commands or reports:  # a tick alone says nothing about how busy the bus is
                self.last_batch = len(commands) + len(reports)
            try:
                await self.process(commands, reports, tick)
                if commands or reports:  # a tick alone is not a batch of work
                    self.recovered()
                    metrics.BATCH_MESSAGES.observe(len(commands) + len(reports))
                    metrics.BATCH_SECONDS.observe(time.perf_counter() - began)
            except Exception as e:
                metrics.BATCHES_FAILED.inc()
                self.failed(e)
                for m in commands + reports:
                    with contextlib.suppress(Exception):
                        await m.nak(delay=1)
                await asyncio.sleep(0.5)
                with contextlib.suppress(Exception):
                    await self.rebuild()
            async with self.processed:
                self.processed.notify_all()

    def should_linger(self) -> bool:
        """Linger only while messages come in faster than batches go (the last batch was a real one):
        a lone client's submit is not held back for company that is not coming."""
        waiting = self.inbox.commands or self.inbox.reports
        return bool(waiting) and self.settings.linger > 0 and self.last_batch >= self.settings.linger_after

    def failed(self, e: Exception) -> None:
        """Log a failed batch once with its cause; the same cause again (its retries, redelivered
        messages failing alike) only counts, until a batch succeeds or the cause changes."""
        cause = f"{type(e).__name__}: {e}"
        self.failures += 1
        if cause == self.failing:
            log.debug("batch failed again (%d in a row): %s", self.failures, cause)
            return
        self.failing = cause
        log.error(
            "batch failed (%s); rebuilding from the database, messages will be redelivered",
            cause,
            exc_info=e,
        )

    def recovered(self) -> None:
        """A batch of messages committed: the failures, if any, are over (a tick alone proves nothing)."""
        if self.failing is not None:
            log.warning("batches succeed again after %d failed in a row (%s)", self.failures, self.failing)
        self.failing, self.failures = None, 0

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One batch's transaction on the pipeline's own connection, opened once and kept: no pool
        checkout, reset and new session state per batch. A failed batch drops the connection (it may
        be what failed); the next batch opens a fresh one."""
        if self.conn is None:
            conn = await self.engine.connect()
            # SQLite: take the write lock first, so no other writer can make the read-then-write fail
            self.conn = await conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
        try:
            async with self.conn.begin():
                session = AsyncSession(bind=self.conn, expire_on_commit=False)
                try:
                    yield session
                    await session.flush()  # what went through the ORM (nodes, arrays, workflows, tokens)
                finally:
                    await session.close()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Give the batch connection back (on a failed batch, and when the pipeline stops)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            # shielded: a stop that cancels the batch must not leave the connection checked out
            with contextlib.suppress(Exception):
                await asyncio.shield(conn.close())

    # --- one batch -----------------------------------------------------------------------------
    async def process(self, commands: list[Msg], reports: list[Msg], tick: bool) -> None:
        decoded = [(m, self.decode(m, v1.Command)) for m in commands]
        decoded_cmds: list[tuple[Msg, v1.JobCommand]] = []
        workflows: list[v1.SubmitWorkflow] = []
        for m, c in decoded:
            if isinstance(c, v1.SubmitJobs):  # a batch: its jobs in this one transaction, all or none
                decoded_cmds.extend((m, job) for job in c.jobs)
            elif isinstance(c, v1.SubmitWorkflow):  # the same, dependencies first, and its row
                decoded_cmds.extend((m, job) for job in c.jobs)
                workflows.append(c)
            elif c is not None and not isinstance(c, ACCESS):
                decoded_cmds.append((m, c))
        access = [c for _, c in decoded if isinstance(c, ACCESS)]
        decoded_reps = [(m, rep) for m in reports for rep in self.reports_of(m)]
        async with self.transaction() as session:
            txn = Txn(session, self.conn)
            await self.relay.forget_published(txn.conn, due=tick)
            tokens = await self.access.apply(session, access)
            # the audit records submits carried: in this transaction with their jobs, once each
            carried = [
                msgspec.structs.replace(c.audit, request=c.audit.request or c.job_id)
                for _, c in decoded
                if isinstance(c, v1.SubmitJob) and c.audit is not None
            ]
            await audit.insert_records(txn.conn, carried, carried=True)
            ids = {c.job_id for _, c in decoded_cmds}
            arrays = {c.job_id for _, c in decoded_cmds if isinstance(c, v1.SubmitJob) and c.spec.array}
            await txn.load_arrays(arrays)
            for array_id in ids & set(self.core.arrays.open):  # a command on a whole array: its live tasks
                ids |= self.core.arrays.live_tasks(array_id)
            after = {d.job for _, c in decoded_cmds if isinstance(c, v1.SubmitJob) for d in c.spec.after}
            ids |= after
            ids |= {r.job_id for _, r in decoded_reps if r is not None}
            if tick:
                ids |= self.tick_ids()
            ids |= self.core.dispatch_candidates()
            await txn.load(ids)
            requeued = self.requeued_after(txn, decoded_cmds)
            if requeued:
                await txn.load(requeued)
                after |= requeued
            if after - set(txn.rows):  # arrays named in `after`: how those that ended, ended
                await txn.load_array_ends(after - set(txn.rows))
            await store_workflows(session, workflows)
            for msg, cmd in decoded_cmds:
                self.command(txn, cmd, msg)
            for _, rep in decoded_reps:
                if rep is not None:
                    self.core.report(txn, rep)
            if tick:
                await self.tick(txn)
            await self.settle_dependents(txn)
            self.core.arrays.settle(txn)
            await self.settle_dependents(txn)  # of arrays that closed as their last tasks were counted
            growing = self.core.arrays.growing()
            owners = {array.owner for array in growing}
            gpu_owners = {array.owner for array in growing if array.spec.resources.gpus_total}
            headroom = await quotas.active_headroom(session, owners)
            self.core.materialise(txn, headroom, await quotas.gpu_headroom(session, gpu_owners))
            await self.read_shares(session)
            missing = self.core.dispatch_candidates() - set(txn.rows)
            if missing:
                await txn.load(missing)
            dispatched_before = len(txn.outbox)
            self.core.dispatch(txn)
            runs = [r.subject for r in txn.outbox[dispatched_before:] if r.subject.endswith(".run")]
            self.stats["dispatched"] += len(runs)
            await txn.write_arrays()
            await txn.write()
        self.stats["batches"] += 1
        for subject in runs:  # jobwire.exec.<node>.run, counted once committed
            metrics.DISPATCHES.labels(node=subject.split(".")[2]).inc()
        self.stats["commands"] += len(commands)
        self.stats["reports"] += len(reports)
        for row, artifacts in txn.deleted:
            await self.relay.purge(row.id, artifacts)
        if txn.outbox:
            await self.relay.publish([(r.id, r.subject, r.payload, r.msg_id, r.headers) for r in txn.outbox])
        await self.access.announce(tokens)
        for m in commands + reports:
            await m.ack()

    async def read_shares(self, session: AsyncSession) -> None:
        """The owners' fair-share weights (one query), read again at most every ``SHARES_TTL``
        seconds: an admin's ``PUT /v1/quotas/{owner}`` takes effect within that."""
        fair = self.core.cluster.fair
        mono = time.monotonic()
        if fair.shares_read is None or mono - fair.shares_read >= SHARES_TTL:
            fair.shares = await quotas.shares(session)
            fair.shares_read = mono

    @staticmethod
    def requeued_after(txn: Txn, commands: list[tuple[Msg, v1.JobCommand]]) -> set[str]:
        """The dependencies of requeued jobs that never ran (cancelled while waiting, or because a
        dependency failed): they wait for them again, so their rows are read with the batch."""
        out: set[str] = set()
        for _, cmd in commands:
            row = txn.rows.get(cmd.job_id) if isinstance(cmd, v1.RequeueJob) else None
            if row is not None and row.attempt == 0 and b'"after"' in row.spec:
                out.update(d.job for d in v1.decode(row.spec, v1.JobSpec).after)
        return out

    async def settle_dependents(self, txn: Txn) -> None:
        """The dependents of what ended, in rounds (a cancel ends its own dependents): one query for
        the rows of each round's waiting dependents."""
        while txn.ended:
            ended, txn.ended = txn.ended, []
            await txn.load(self.core.cluster.waits.waiting_on(ended))
            self.core.resolve(txn, ended)

    def decode(self, msg: Msg, tp: Any) -> Any:
        try:
            return v1.decode(msg.data, tp)
        except Exception as e:
            log.error("dropping undecodable message on %s: %s", msg.subject, e)
            asyncio.get_running_loop().create_task(msg.term())
            return None

    def reports_of(self, msg: Msg) -> list[v1.Report]:
        """The reports one message carries: one, or a node's group (``RunReports``) in its order. A group
        must come from the node its subject names, as the bus's permissions enforce per node."""
        got = self.decode(msg, v1.ReportMessage)
        if not isinstance(got, v1.RunReports):
            return [] if got is None else [got]
        if sj.report_node(msg.subject) != got.node:
            log.error("dropping the reports of node %s sent on %s", got.node, msg.subject)
            asyncio.get_running_loop().create_task(msg.term())
            return []
        mine = [r for r in got.reports if r.node == got.node]
        if len(mine) < len(got.reports):
            log.error("node %s reported for other nodes; those reports are ignored", got.node)
        return mine

    def command(self, txn: Txn, cmd: v1.JobCommand, msg: Msg) -> None:
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
        elif isinstance(cmd, v1.RequeueJob):
            self.core.requeue(txn, cmd.job_id, cmd.reason)

    # --- periodic work -------------------------------------------------------------------------
    def tick_ids(self) -> set[str]:
        """Jobs the tick may touch: on nodes going down or heart-beating, overdue ones. Pending jobs (no
        node can take them) are not among them: they are read only when a node comes up or changes
        (``Liveness.apply_heartbeats``), not twice a second each."""
        ids = {job_id for job_id, _ in self.core.overdue(time.monotonic())}
        return ids | self.liveness.tick_ids()

    async def tick(self, txn: Txn) -> None:
        mono = time.monotonic()
        await self.liveness.tick(txn, mono)
        for job_id, over in self.core.overdue(mono):
            self.core.backstop(txn, job_id, over)
        if self.relay.pending:
            await self.relay.flush()


async def store_workflows(session: AsyncSession, workflows: list[v1.SubmitWorkflow]) -> None:
    """The workflows' own rows, once each (a redelivered command finds its row and its jobs stored)."""
    for wf in workflows:
        if await session.get(WorkflowRow, wf.workflow_id) is not None:
            continue
        names = {job.spec.name or job.job_id: job.job_id for job in wf.jobs}
        at = wf.submitted_at or (wf.jobs[0].submitted_at if wf.jobs else None)
        session.add(
            WorkflowRow(
                id=wf.workflow_id,
                owner=wf.owner,
                name=wf.name,
                created_at=at or now(),
                jobs=v1.encode(names),
            )
        )
