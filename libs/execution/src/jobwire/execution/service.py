"""``ExecutorService``: one node's executor process, the same for every backend.

It consumes the node's work (durable pull consumer ``exec-<node>``, acked only once the effect is
durable), reports to the scheduler, heart-beats, and drives :class:`RunLoop`. Stopping it leaves
jobs running; the next start adopts them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import posixpath
import secrets
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import Any, Self

import msgspec
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import AckPolicy, ConsumerConfig
from nats.micro.service import Service

from jobwire.contracts.v1 import (
    CancelRun,
    FilesReply,
    FilesRequest,
    HoldRun,
    JobState,
    NodeHeartbeat,
    PurgeJob,
    RunArray,
    RunFinished,
    RunJob,
    RunRef,
    RunRunning,
    RunStarting,
    Work,
    feasibility,
)
from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime import metrics, micro, telemetry
from jobwire.runtime.bus import Bus, connect
from jobwire.runtime.heap import freeze_startup_heap, thaw_heap
from jobwire.runtime.settings import BusSettings, bus_settings

from . import jobfiles
from . import journal as jr
from .attempt.files import rank_of
from .attempt.layout import OWN_TREE
from .catalog import keep_published
from .executor import Executor, HoldRefused, RunHandle, RunKey, StartDeferred, StartRefused, load_executor
from .inputs import InputSource
from .runloop import TRACER, RunLoop, now, trace_of
from .settings import ExecutorSettings, executor_settings
from .transport import TransportError

log = logging.getLogger(__name__)
SERVICE_NAME = "jobwire-executor"
ACK_WAIT = 60.0
#: a RunJob whose start keeps failing is reported failed after this many deliveries
MAX_START_TRIES = 5
RETRY_DELAY = 2.0
#: the longest wait between launch tries while the infrastructure cannot take jobs (StartDeferred)
DEFER_MAX = 60.0
#: the shortest time between two ticks when runs end: ends that come close together are polled together
TICK_GAP = 0.01
WORK_KINDS: dict[type, str] = {
    RunJob: "run",
    RunArray: "run_array",
    HoldRun: "hold",
    CancelRun: "cancel",
    PurgeJob: "purge",
}
REPORT_KINDS: dict[type, str] = {RunStarting: "starting", RunRunning: "running", RunFinished: "finished"}

try:
    VERSION = version("jobwire-execution")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    VERSION = "0.0.0"


class ExecutorService:
    """Run with ``await svc.run(stop_event)``, or ``async with ExecutorService(...)`` in tests."""

    def __init__(
        self,
        settings: ExecutorSettings | None = None,
        *,
        bus_settings: BusSettings | None = None,
        executor: Executor | None = None,
        freeze_heap: bool = False,
    ) -> None:
        """``freeze_heap``: the service owns its process (the executor's ``__main__``), so what exists
        once it has started may be frozen out of the collector's walks (``runtime.heap``); never in a
        process that hosts other work, such as a test run, whose whole heap each start would collect."""
        self.freeze_heap = freeze_heap
        self.settings = settings or executor_settings()
        sj.check_token(self.settings.node, "node")
        self.bus_settings = bus_settings or _default_bus_settings()
        self.executor = executor or load_executor(self.settings.backend).from_settings(self.settings)
        check_run_as(self.settings, self.executor)
        self.node = self.settings.node
        self.instance = secrets.token_hex(8)
        self.started_at: float | None = None
        self._bus: Bus | None = None
        self._loop: RunLoop | None = None
        self._micro: Service | None = None
        self._files_sub: Subscription | None = None
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._handling = False
        #: whether the node answered the last check; while it does not, nothing is sent or taken
        self.reachable = True
        #: the last tick failed on the transport (logged once until a tick succeeds)
        self._tick_failing = False
        #: set when the backend hears a run end: the next tick comes at once, not at its interval
        self._run_changed = asyncio.Event()
        #: with ``self`` and no configured owner, the owner this executor took on (first_owner)
        self._first_owner: str | None = None

    async def _refuse_owner(self, run: RunJob) -> None:
        """With ``self`` and no JOBWIRE_EXECUTOR_OWNER, the first owner's is the only one served: it is
        kept beside the attempts (``<root>/.executor/owner``) so a restart does not forget it."""
        if not self.executor.run_as.is_self:
            return
        if self.settings.owner is None and self._first_owner is None:
            self._first_owner = await first_owner(self.executor, run.owner)
        refuse_owner(run, self.settings, self._first_owner)

    @property
    def served_owner(self) -> str | None:
        """The one owner whose jobs this node runs (as its own account), for placement to know before
        it sends another owner's job here; None: it runs every owner's (each as its own account)."""
        if not self.executor.run_as.is_self:
            return None
        return self.settings.owner or self._first_owner

    @property
    def bus(self) -> Bus:
        if self._bus is None:
            raise RuntimeError("the executor service is not started")
        return self._bus

    @property
    def runs(self) -> RunLoop:
        if self._loop is None:
            raise RuntimeError("the executor service is not started")
        return self._loop

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, adopt what runs from before, then start consuming, ticking and heart-beating."""
        await self.executor.open()
        if self.executor.catalog is not None:
            await self.executor.catalog.refresh()  # before the first RunJob can name a program
        self._bus = await connect(
            self.bus_settings, name=f"{SERVICE_NAME}-{self.node}", declare=self.settings.declare
        )
        self.executor.inputs = InputSource(self._bus)
        self._loop = RunLoop(self.executor, self._bus, self.settings)
        self.executor.on_run_change(self._heard_end)
        adopted = await self._loop.adopt()
        sub = await self._bus.js.pull_subscribe(
            sj.exec_filter(self.node),
            durable=f"exec-{self.node}",
            stream=sj.EXEC_STREAM,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT, max_deliver=-1),
        )
        self._micro = await micro.register(
            self._bus.nc,
            name=SERVICE_NAME,
            version=VERSION,
            description="runs jobs for one jobwire node",
            status=self.status,
            metadata={"node": self.node, "backend": self.settings.backend},
        )
        self._files_sub = await self._bus.nc.subscribe(sj.files_subject(self.node), cb=self._on_files)
        self.started_at = time.time()
        await self._heartbeat()
        self._tasks = [
            asyncio.create_task(self._consume(sub), name="consume"),
            asyncio.create_task(self._ticks(), name="ticks"),
            asyncio.create_task(self._heartbeats(), name="heartbeats"),
        ]
        if self.executor.catalog is not None:
            publishing = keep_published(self._bus, self.node, self.executor.catalog, self._stopping)
            self._tasks.append(asyncio.create_task(publishing, name="programs"))
        log.info("executor %s (%s) started; %d run(s) adopted", self.node, self.settings.backend, adopted)
        if self.freeze_heap:
            # what exists now (modules, the backend's client, the adopted runs) lives on; a full collection
            # walking it held up the one loop that starts and reports jobs for 66-123 ms (``runtime.heap``)
            frozen = freeze_startup_heap()
            log.debug("executor %s: %d objects kept out of the collector's walks", self.node, frozen)

    async def stop(self) -> None:
        """Stop taking work and reporting; jobs keep running and are adopted on the next start."""
        self._stopping.set()
        for task in self._tasks:
            # A message being handled is finished first, so no launch is left half-recorded.
            if task.get_name() != "consume" or not self._handling:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._loop is not None:
            await self._loop.close()
        if self._files_sub is not None:
            with contextlib.suppress(Exception):
                await self._files_sub.unsubscribe()
            self._files_sub = None
        if self._micro is not None:
            with contextlib.suppress(Exception):
                await self._micro.stop()
        if self._bus is not None:
            await self._bus.close()
        await self.executor.close()
        if self.freeze_heap:
            thaw_heap()
        log.info("executor %s stopped", self.node)

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def status(self) -> dict[str, Any]:
        runs = self._loop.runs.values() if self._loop else []
        return {
            "node": self.node,
            "backend": self.settings.backend,
            "instance": self.instance,
            "version": VERSION,
            "started_at": self.started_at,
            "capacity": msgspec.to_builtins(self.executor.capacity()),
            "describe": self.executor.describe(),
            "running": [
                {
                    "job_id": t.handle.run.job_id,
                    "attempt": t.handle.run.attempt,
                    "ref": t.handle.ref,
                    "finishing": t.finishing,
                    "stopping": t.journal.stop is not None,
                }
                for t in runs
            ],
        }

    # --- loops ----------------------------------------------------------------------------------

    async def _consume(self, sub: Any) -> None:
        while not self._stopping.is_set():
            if not self.reachable:
                await self._sleep(self.settings.heartbeat_interval)
                continue
            try:
                msgs: list[Msg] = await sub.fetch(self.settings.fetch_batch, timeout=1.0)
            except TimeoutError:
                continue
            except Exception:
                log.exception("fetching work failed; retrying")
                await self._sleep(1.0)
                continue
            if self._stopping.is_set():
                for m in msgs:
                    await m.nak()
                continue
            self._handling = True
            try:
                # Different jobs start side by side; one job's messages keep their order.
                groups: dict[str, list[Msg]] = {}
                for m in msgs:
                    groups.setdefault(_job_of(m), []).append(m)
                await asyncio.gather(*(self._handle_in_order(g) for g in groups.values()))
            finally:
                self._handling = False
        with contextlib.suppress(Exception):
            await sub.unsubscribe()

    async def _handle_in_order(self, msgs: list[Msg]) -> None:
        for m in msgs:
            await self._handle(m)

    async def _ticks(self) -> None:
        """A full tick every ``tick_interval``; in between, when the backend says a run ended, a short
        one that only finishes the runs that ended (``RunLoop.tick(ended_only=True)``)."""
        due = 0.0
        while not self._stopping.is_set():
            full = time.monotonic() >= due
            try:
                if self.reachable:
                    await self.runs.tick(ended_only=not full)
            except TransportError as e:
                # the node does not answer (yet reported up until the probes agree): one line when
                # that starts, one when it ends, never a traceback per tick
                if not self._tick_failing:
                    log.warning("node %s: polling its runs failed (%s); retrying quietly", self.node, e)
                self._tick_failing = True
            except Exception:
                log.exception("tick failed; trying again")
            else:
                if self._tick_failing and self.reachable:
                    log.warning("node %s: polling its runs works again", self.node)
                    self._tick_failing = False
            if full:
                due = time.monotonic() + self.settings.tick_interval
            await self._until_next_tick(due)

    def _heard_end(self, key: RunKey) -> None:
        """The backend heard a run end: poll it at once (it may be tracked a moment later, see
        :meth:`_launched`)."""
        self.runs.heard.add(key)
        self._run_changed.set()

    async def _until_next_tick(self, due: float) -> None:
        """Until the next full tick is due, or less when the backend says a run ended (no sooner than
        ``TICK_GAP`` after the last tick: ends that come close together are found by one poll)."""
        await asyncio.sleep(min(TICK_GAP, max(0.0, due - time.monotonic())))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._run_changed.wait(), max(0.0, due - time.monotonic()))
        self._run_changed.clear()

    async def _heartbeats(self) -> None:
        while not self._stopping.is_set():
            await self._sleep(self.settings.heartbeat_interval)
            try:
                await self._heartbeat()
            except Exception:
                log.exception("heartbeat failed")

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _heartbeat(self) -> None:
        reachable = await self.executor.check()
        if reachable != self.reachable:
            log.warning("node %s %s", self.node, "answers again" if reachable else "does not answer")
            self.reachable = reachable
        if not reachable:
            return
        s = self.settings
        beat = NodeHeartbeat(
            node=self.node,
            backend=s.backend,
            capacity=msgspec.structs.replace(
                self.executor.capacity(),
                hold=self.executor.can_hold(),
                options_schema=self.executor.options_schema(),
                owner=self.served_owner,
            ),
            at=now(),
            instance=self.instance,
            interval=s.heartbeat_interval,
            labels=dict(s.labels),
            pool=s.pool,
            version=VERSION,
            running=[RunRef(job_id=j, attempt=a) for j, a in self.runs.runs],
            gpus=self.executor.gpus(),
        )
        await self.bus.publish_core(sj.heartbeat_subject(self.node), beat)

    # --- work -----------------------------------------------------------------------------------

    async def _handle(self, m: Msg) -> None:
        try:
            work: Work = msgspec.json.decode(m.data, type=Work)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            log.error("rejecting undecodable work on %s: %s", m.subject, e)
            await m.term()
            return
        headers = m.headers or {}
        kind = WORK_KINDS[type(work)]
        try:
            with telemetry.span_from(
                headers, TRACER, f"executor.{kind}", job_id=work.job_id, attempt=work.attempt
            ):
                if isinstance(work, RunJob):
                    await self._on_run(work, headers)
                elif isinstance(work, RunArray):
                    await self._on_run_array(work, headers)
                elif isinstance(work, HoldRun):
                    await self._on_hold(work)
                elif isinstance(work, PurgeJob):
                    await self._on_purge(work)
                else:
                    await self._on_cancel(work)
        except StartDeferred as e:
            assert isinstance(work, RunJob | RunArray)
            tries = m.metadata.num_delivered or 1
            delay = min(DEFER_MAX, RETRY_DELAY * 2 ** min(tries - 1, 8))
            log.warning("%s attempt %d waits (try %d, next in %.0f s): %s", *_key(work), tries, delay, e)
            for run in self._unlaunched(work):
                await self._defer(run, str(e), tries)
            await m.nak(delay=delay)
            return
        except Exception as e:
            tries = m.metadata.num_delivered or 1
            if isinstance(work, RunJob | RunArray) and tries >= MAX_START_TRIES:
                log.exception(
                    "starting %s attempt %d failed %d times; reporting it failed", *_key(work), tries
                )
                for run in self._unlaunched(work):
                    why = f"could not start the job ({tries} tries): {e}"
                    await self._report(_failed(run, self.node, why))
                await m.ack()
                return
            log.exception("handling %s for %s attempt %d failed; it will be redelivered", kind, *_key(work))
            await m.nak(delay=RETRY_DELAY)
            return
        await m.ack()

    async def _defer(self, run: RunJob, reason: str, tries: int) -> None:
        """Say why a launch waits (the job stays ``starting`` with this reason); each try its own id."""
        msg = RunStarting(job_id=run.job_id, attempt=run.attempt, node=self.node, at=now(), reason=reason)
        await self.runs.reporter.send(
            msg, sj.attempt_msg_id(run.job_id, run.attempt, "starting", "deferred", tries)
        )

    async def _report(self, msg: RunStarting | RunRunning | RunFinished) -> None:
        kind = REPORT_KINDS[type(msg)]
        await self.runs.reporter.send(msg, sj.attempt_msg_id(msg.job_id, msg.attempt, kind))

    async def _report_started(self, handle: RunHandle, running_at: float | None) -> None:
        """Report a launched attempt (or re-report it, for a redelivered RunJob): ``running`` where
        the loop saw it run, dated when it really began (``running_at``), so a short job never ends
        before it started; ``starting`` while it does not run yet. Never both: the scheduler made the
        job ``starting`` when it dispatched it, and ``running`` alone keeps one message id per report,
        so a re-report is the same message again (the stream drops the copy)."""
        run = handle.run
        if running_at is None:
            await self._report(RunStarting(job_id=run.job_id, attempt=run.attempt, node=self.node, at=now()))
            return
        running = RunRunning(
            job_id=run.job_id,
            attempt=run.attempt,
            node=self.node,
            at=datetime.fromtimestamp(running_at, UTC),
            ports=dict(handle.ports),
            details=dict(handle.details),
        )
        await self._report(running)

    async def _known(self, run: RunJob) -> bool:
        """Whether the attempt was launched before (in memory or on disk): then it is re-reported, or
        ignored when its end was reported already, and not started again."""
        loop = self.runs
        key = (run.job_id, run.attempt)
        t = loop.runs.get(key)
        if t is None:
            found = await self.executor.existing(run.job_id, run.attempt, rank_of(run))
            if found is not None and found.reported:
                log.info("%s attempt %d already ran and was reported; ignoring the repeat", *key)
                return True
            if found is not None and found.handle is not None:
                t = await loop.track(found.handle)
        if t is not None:
            if not t.finishing:
                await self._report_started(t.handle, t.journal.running_at)
            return True
        return False

    async def _on_run(self, run: RunJob, headers: dict[str, str]) -> None:
        """Start the attempt once; a redelivered RunJob finds it (in memory or on disk) and re-reports."""
        if await self._known(run):
            return
        # No ``starting`` report before the launch: the scheduler made the job ``starting`` when it
        # dispatched it, and one without a reason changes nothing there; it cost a round trip to the
        # stream before every launch. The launch's own report (``starting`` and ``running``, or why it
        # waits) follows at once.
        try:
            refuse_image(run, self.settings.backend)
            await self._refuse_owner(run)
            handle = await self.executor.start(self.executor.with_options(run))
        except StartRefused as e:
            log.info("%s attempt %d refused: %s", run.job_id, run.attempt, e)
            await self._report(_failed(run, self.node, str(e)))
            return
        except Exception:
            metrics.BACKEND_ERRORS.labels(backend=self.settings.backend, call="start").inc()
            raise
        await self._launched(run, handle, headers)

    async def _on_run_array(self, work: RunArray, headers: dict[str, str]) -> None:
        """Start an array's tasks dispatched together, in one ``start_array`` (one native array job
        where the backend has them). Each task is reported and tracked as its own attempt; a task
        launched before (a redelivery after a crash) is re-reported, not launched again."""
        fresh: list[RunJob] = []
        for run in work.runs:
            if await self._known(run):
                continue
            try:  # no ``starting`` report before the launch (see _on_run)
                refuse_image(run, self.settings.backend)
                await self._refuse_owner(run)
                fresh.append(self.executor.with_options(run))
            except StartRefused as e:
                await self._report(_failed(run, self.node, str(e)))
        if not fresh:
            return
        results = await self.executor.start_array(fresh)
        again: BaseException | None = None
        for run, result in zip(fresh, results, strict=True):
            if isinstance(result, RunHandle):
                await self._launched(run, result, headers)
            elif isinstance(result, StartRefused):
                log.info("%s attempt %d refused: %s", run.job_id, run.attempt, result)
                await self._report(_failed(run, self.node, str(result)))
            else:
                metrics.BACKEND_ERRORS.labels(backend=self.settings.backend, call="start").inc()
                again = again or result
        if again is not None:
            raise again  # redelivered: the tasks launched meanwhile are found and not started twice

    def _unlaunched(self, work: RunJob | RunArray) -> list[RunJob]:
        """The runs of ``work`` not tracked here (not launched), for reports about their launch."""
        runs = work.runs if isinstance(work, RunArray) else [work]
        return [r for r in runs if (r.job_id, r.attempt) not in self.runs.runs]

    async def _launched(self, run: RunJob, handle: RunHandle, headers: dict[str, str]) -> None:
        """Record, report and track an attempt its backend just launched."""
        loop = self.runs
        started = time.time()
        running_at = (handle.started_at or started) if handle.running else None
        journal = jr.Journal(started_at=started, running_at=running_at, trace=trace_of(headers))
        await self.executor.save_state(handle, jr.encode(journal))
        if running_at is not None:
            await self._report_started(handle, running_at)
        elif handle.details:
            # launched into a queue (a batch id): shown at once, not only when it runs
            launched = RunStarting(
                job_id=run.job_id, attempt=run.attempt, node=self.node, at=now(), details=dict(handle.details)
            )
            await self.runs.reporter.send(
                launched, sj.attempt_msg_id(run.job_id, run.attempt, "starting", "launched")
            )
        await loop.track(handle, journal)
        if handle.key in loop.heard:  # it ended before it was tracked (a no-op job): poll it now
            self._run_changed.set()

    async def _on_files(self, msg: Msg) -> None:
        """A job's directory listed or read for the gateway (request/reply, never through the work
        queue: a read must not wait behind launches)."""
        try:
            req = msgspec.json.decode(msg.data, type=FilesRequest)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            reply = FilesReply(status=400, error=f"not a files request: {e}")
        else:
            reply = await jobfiles.answer(self.executor, req)
        with contextlib.suppress(Exception):
            await msg.respond(msgspec.json.encode(reply))

    async def _on_purge(self, purge: PurgeJob) -> None:
        """Remove the deleted job's directories once nothing here still reports one of its attempts
        (the end's report is marked in the directory); until then the work is redelivered."""
        busy = [a for j, a in self.runs.runs if j == purge.job_id]
        if busy:
            raise RuntimeError(f"attempt {busy[0]} is still being reported; removing its files later")
        await self.executor.purge(purge.job_id)
        log.info("removed the files of deleted job %s", purge.job_id)

    async def _on_hold(self, hold: HoldRun) -> None:
        """Hold or release a launched attempt that waits to run; the next polls report the change."""
        what = "release" if hold.release else "hold"
        t = self.runs.runs.get((hold.job_id, hold.attempt))
        if t is None or t.finishing or t.journal.stop is not None:
            log.info("%s for %s attempt %d: not waiting here; ignored", what, hold.job_id, hold.attempt)
            return
        if not hold.release and t.journal.running_at is not None:
            log.info("hold for %s attempt %d: it already runs; ignored", hold.job_id, hold.attempt)
            return
        try:
            await self.executor.hold(t.handle, hold.release)
        except HoldRefused as e:
            log.warning("%s for %s attempt %d refused: %s", what, hold.job_id, hold.attempt, e)
            return
        except Exception:
            metrics.BACKEND_ERRORS.labels(backend=self.settings.backend, call="hold").inc()
            raise
        log.info("%s of %s attempt %d done", what, hold.job_id, hold.attempt)

    async def _on_cancel(self, cancel: CancelRun) -> None:
        t = self.runs.runs.get((cancel.job_id, cancel.attempt))
        if t is None or t.finishing:
            log.info("cancel for %s attempt %d: not running here; ignored", cancel.job_id, cancel.attempt)
            return
        log.info(
            "stopping %s attempt %d: %s (%s)", cancel.job_id, cancel.attempt, cancel.outcome, cancel.reason
        )
        await self.runs.request_stop(t, cancel.outcome, cancel.reason, cancel.grace)


def _key(work: Work) -> tuple[str, int]:
    return work.job_id, work.attempt


def _failed(run: RunJob, node: str, reason: str) -> RunFinished:
    return RunFinished(
        job_id=run.job_id, attempt=run.attempt, node=node, at=now(), outcome=JobState.FAILED, reason=reason
    )


def _default_bus_settings() -> BusSettings:
    return bus_settings()


class _JobKey(msgspec.Struct):
    job_id: str = ""


def _job_of(m: Msg) -> str:
    """The job a work message is about (undecodable ones share one key and are rejected in order)."""
    try:
        return msgspec.json.decode(m.data, type=_JobKey).job_id
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ""


def check_run_as(settings: ExecutorSettings, executor: Executor) -> None:
    """Refuse to start with a run-as mode this backend cannot honour (ValueError)."""
    mode = executor.run_as.mode
    if mode not in executor.run_as_modes:
        raise ValueError(
            f"JOBWIRE_EXECUTOR_RUN_AS={settings.run_as!r} is not supported yet by the {executor.backend!r} "
            f"backend (it runs jobs as: {', '.join(sorted(executor.run_as_modes))}); with 'self', "
            "JOBWIRE_EXECUTOR_OWNER names the one owner it serves"
        )
    if mode == "self" and settings.owner is None:
        log.warning(
            "jobs run as this executor's own OS account: it serves only the owner of the first job it "
            "runs; set JOBWIRE_EXECUTOR_OWNER to name that owner, or JOBWIRE_EXECUTOR_RUN_AS=owner to "
            "serve several (issue 12)"
        )


def refuse_owner(run: RunJob, settings: ExecutorSettings, first: str | None = None) -> None:
    """A job whose owner is not the one this executor serves never runs as the executor's account
    (``first``: the owner it took on when none was configured)."""
    if settings.owner is not None and run.owner != settings.owner:
        raise StartRefused(
            f"node {settings.node!r} runs jobs as its own OS account for owner {settings.owner!r} only "
            f"(JOBWIRE_EXECUTOR_OWNER); a job of {run.owner!r} would share that account's files"
        )
    if settings.owner is None and first is not None and run.owner != first:
        raise StartRefused(
            f"node {settings.node!r} runs jobs as its own OS account and serves owner {first!r}, the first "
            f"whose job it ran; a job of {run.owner!r} would share that account's files. To serve several "
            "owners set JOBWIRE_EXECUTOR_RUN_AS=owner (an account per owner) or fixed:<user>"
        )


FIRST_OWNER = "owner"


async def first_owner(executor: Executor, owner: str) -> str | None:
    """The owner recorded in the executor's root, recording ``owner`` when there is none yet (None:
    this backend keeps no attempt files, so nothing is recorded)."""
    try:
        files = executor.files()
    except NotImplementedError:
        return None
    own = posixpath.join(files.root, OWN_TREE)
    path = posixpath.join(own, FIRST_OWNER)
    try:
        return (await files.transport.read_file(path)).decode().strip() or owner
    except FileNotFoundError:
        await files.transport.mkdir(own)
        await files.transport.chmod(own, 0o700)
        await files.transport.write_file(path, f"{owner}\n".encode(), 0o600)
        return owner


def refuse_image(run: RunJob, backend: str) -> None:
    """A node that runs no images never runs a job that names one on the host instead (the gateway
    refuses such a job at submit; this is the backstop for one that got here anyway)."""
    if run.spec.image and backend not in feasibility.IMAGE_BACKENDS:
        raise StartRefused(
            f"the job names an image ({run.spec.image}) but node backend {backend!r} runs no images; "
            "it was not run on the host without it"
        )
