"""The one tick loop over every run of this node: poll, pump logs, progress, timeouts, endings.

A tick polls all runs in one backend call; a run that ended is finished in a task of its own
(drain logs, upload outputs, report), so a large upload never stalls the other runs' logs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import logging
import signal
import time
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from nats.js.errors import NotFoundError

from jobwire.contracts.v1 import JobProgress, JobState, RunFinished, RunRunning, RunStarting, Usage
from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime import metrics, telemetry
from jobwire.runtime.bus import Bus

from . import journal as jr
from .artifacts import Uploaded, upload_outputs
from .executor import Executor, RunHandle, RunKey, RunStatus
from .logpump import StreamPump
from .reports import Reporter
from .settings import ExecutorSettings

log = logging.getLogger(__name__)
TRACER = "jobwire.execution"
#: chunks per stream per tick, so one chatty job cannot hold up the others
CHUNKS_PER_TICK = 8
FINISH_RETRY = 2.0
#: how far a file's time (the kernel's coarse clock, one tick behind at most) may read before the
#: moment it was really written: a job that ended within this of its stop request ended by the stop
MTIME_SLACK = 0.05
TRACE_HEADERS = ("traceparent", "tracestate")


def now() -> datetime:
    return datetime.now(UTC)


def trace_of(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (headers or {}).items() if k in TRACE_HEADERS}


@dataclass(eq=False)
class Tracked:
    handle: RunHandle
    journal: jr.Journal
    pumps: dict[str, StreamPump]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    progress_mark: Hashable | None = None
    bad_progress: int = 0
    finishing: bool = False
    retry_at: float = 0.0

    @property
    def key(self) -> RunKey:
        return self.handle.key


class RunLoop:
    """Owns the tracked runs of one node; the service feeds it starts and stop requests."""

    def __init__(self, executor: Executor, bus: Bus, settings: ExecutorSettings) -> None:
        self.executor = executor
        self.bus = bus
        self.settings = settings
        self.node = settings.node
        self.runs: dict[RunKey, Tracked] = {}
        #: every report of this node goes through it (grouped while a publish is in flight)
        self.reporter = Reporter(bus, self.node)
        self._finishers: set[asyncio.Task[None]] = set()
        #: runs the backend heard end (``Executor.on_run_change``) that no poll has looked at yet
        self.heard: set[RunKey] = set()

    # --- tracking -------------------------------------------------------------------------------

    async def track(self, handle: RunHandle, journal: jr.Journal | None = None) -> Tracked:
        """Follow ``handle`` from now on; without ``journal`` the saved one is loaded (re-adoption)."""
        loaded = journal is None
        if journal is None:
            raw = await self.executor.load_state(handle)
            journal = jr.decode(raw) if raw else jr.Journal(started_at=time.time())
            if raw and handle.running and journal.running_at is None:
                journal.running_at = journal.started_at  # saved before running_at existed
        run = handle.run
        # one pump per log of the run (a SLURM gang's run has every rank's); each keeps its cursor
        # in the journal under the log's name, and publishes on its own stream
        pumps = {
            name: StreamPump(run.job_id, run.attempt, stream, journal.cursor(name))
            for name, stream in self.executor.log_streams(run).items()
        }
        if loaded:
            await self._settle_pending(pumps.values())
        t = Tracked(handle, journal, pumps)
        self.runs[handle.key] = t
        return t

    async def _settle_pending(self, pumps: Iterable[StreamPump]) -> None:
        """A chunk journaled before a crash may have been published already; if it is the last one
        on its pump's subject, skip it, so a restart later than the stream's de-duplication window
        still sends no copy."""
        for pump in pumps:
            cursor = pump.cursor
            if cursor.pending <= cursor.offset:
                continue
            try:
                last = await self.bus.js.get_last_msg(sj.LOG_STREAM, pump.subject)
            except NotFoundError:
                continue
            chunk = msgspec.json.decode(last.data or b"{}", type=dict[str, Any])
            if (
                chunk.get("attempt") == pump.attempt
                and chunk.get("offset") == cursor.offset
                and not chunk.get("eof")
            ):
                cursor.offset = cursor.pending

    async def adopt(self) -> int:
        handles = await self.executor.adopt()
        for h in handles:
            await self.track(h)
            log.info("adopted %s attempt %d (%s)", h.run.job_id, h.run.attempt, h.ref)
        return len(handles)

    async def save(self, t: Tracked) -> None:
        """Persist the journal; the lock keeps an older snapshot from landing after a newer one."""
        async with t.lock:
            await self.executor.save_state(t.handle, jr.encode(t.journal))

    # --- the tick -------------------------------------------------------------------------------

    async def tick(self, *, ended_only: bool = False) -> None:
        """Poll every run and advance each; ``ended_only``: poll only the runs the backend heard end
        (:attr:`heard`) and start finishing them, the rest waits for the next full tick."""
        mono = time.monotonic()
        active = [t for t in self.runs.values() if not t.finishing and t.retry_at <= mono]
        if ended_only:
            active = [t for t in active if t.key in self.heard]
            self.heard.difference_update(t.key for t in active)
        else:  # a full tick polls them all; a run heard end and never tracked is forgotten here
            self.heard.intersection_update(self.runs)
        if not active:
            return
        backend = self.settings.backend
        began = time.perf_counter()
        polled_at = time.time()
        try:
            statuses = await self.executor.poll([t.handle for t in active])
        except Exception:
            metrics.BACKEND_ERRORS.labels(backend=backend, call="poll").inc()
            raise
        metrics.POLL_SECONDS.labels(backend=backend).observe(time.perf_counter() - began)
        if ended_only:
            for t in active:
                if statuses[t.key].ended:
                    self._finish_soon(t, statuses[t.key])
            return
        await asyncio.gather(*(self._advance(t, statuses[t.key], polled_at) for t in active))

    def _finish_soon(self, t: Tracked, status: RunStatus) -> None:
        """Finish an ended run in a task of its own (see the module's docstring)."""
        t.finishing = True
        task = asyncio.create_task(self._finish(t, status), name=f"finish {t.key}")
        self._finishers.add(task)
        task.add_done_callback(self._finishers.discard)

    async def _advance(self, t: Tracked, status: RunStatus, polled_at: float) -> None:
        try:
            if status.ended:
                self._finish_soon(t, status)
                return
            await self._phase(t, status, polled_at)
            await self._pump(t, status, final=False)
            await self._progress(t, status)
            await self._enforce(t)
        except Exception:
            log.exception("tick for %s attempt %d failed; trying again next tick", *t.key)

    # --- waiting and running -------------------------------------------------------------------

    async def _phase(self, t: Tracked, status: RunStatus, polled_at: float | None = None) -> None:
        """Report ``running`` once, when a poll first says the run runs; until then every change of
        why it waits (pending reason, held) as a ``starting`` report with its own message id.

        The journal is saved after each publish: a crash in between re-sends the same message id
        (JetStream drops the copy) and a restart neither repeats nor forgets a report.
        """
        j = t.journal
        if j.running_at is not None or status.running is None:
            return
        job_id, attempt = t.key
        if status.running:
            h = t.handle
            began = self._began_running(status, polled_at)
            msg = RunRunning(
                job_id=job_id,
                attempt=attempt,
                node=self.node,
                at=datetime.fromtimestamp(began, UTC),
                ports=dict(h.ports),
                details=dict(h.details),
            )
            await self.reporter.send(msg, sj.attempt_msg_id(job_id, attempt, "running"))
            j.running_at = began
            await self.save(t)
            log.info("%s attempt %d runs", job_id, attempt)
            return
        waiting = jr.Waiting(reason=status.pending_reason, held=status.held)
        if waiting == j.waiting:
            return
        n = j.waiting_reports + 1
        starting = RunStarting(
            job_id=job_id,
            attempt=attempt,
            node=self.node,
            at=now(),
            reason=waiting.reason,
            held=waiting.held,
            details=dict(t.handle.details),
        )
        await self.reporter.send(starting, sj.attempt_msg_id(job_id, attempt, "starting", n))
        j.waiting, j.waiting_reports = waiting, n
        await self.save(t)

    async def _enforce(self, t: Tracked) -> None:
        stop = t.journal.stop
        timeout = t.handle.run.timeout
        since = t.journal.running_at
        if stop is None and timeout is not None and since is not None and time.time() - since >= timeout:
            log.info("%s attempt %d ran past its %g s timeout", *t.key, timeout)
            await self.request_stop(
                t, JobState.TIMED_OUT, f"timed out after {timeout:g} s", self.settings.kill_grace
            )
        elif stop is not None and not stop.killed and time.time() >= stop.at + stop.grace:
            await self._kill(t)

    async def request_stop(self, t: Tracked, outcome: JobState, reason: str, grace: float) -> None:
        """TERM the run now, KILL it after ``grace``; the end is reported with ``outcome``."""
        if t.finishing:
            return
        if t.journal.stop is None:
            t.journal.stop = jr.StopRequest(
                outcome=outcome, reason=reason, grace=max(0.0, grace), at=time.time()
            )
            await self.save(t)
        await self._signal(t, signal.SIGTERM)
        if t.journal.stop.grace <= 0:
            await self._kill(t)

    async def _kill(self, t: Tracked) -> None:
        assert t.journal.stop is not None
        t.journal.stop.killed = True
        await self.save(t)
        await self._signal(t, signal.SIGKILL)

    async def _signal(self, t: Tracked, sig: signal.Signals) -> None:
        """``executor.signal`` (scancel, qdel, docker kill, kill over SSH), its failures counted."""
        try:
            await self.executor.signal(t.handle, sig)
        except Exception:
            metrics.BACKEND_ERRORS.labels(backend=self.settings.backend, call="signal").inc()
            raise

    # --- logs and progress ----------------------------------------------------------------------

    async def _publish(self, subject: str, payload: bytes, msg_id: str) -> None:
        await self.bus.publish(subject, payload, msg_id=msg_id)

    async def _pump(self, t: Tracked, status: RunStatus, *, final: bool) -> None:
        limit = 1 << 62 if final else CHUNKS_PER_TICK
        for stream, pump in t.pumps.items():
            read = functools.partial(self.executor.read_log, t.handle, stream)
            save = functools.partial(self.save, t)
            size = status.log_sizes.get(stream, 0)
            await pump.pump(size, read, self._publish, save, final=final, limit=limit)

    async def _progress(self, t: Tracked, status: RunStatus) -> None:
        mark = status.progress_mark
        if mark is None or mark == t.progress_mark:
            return
        raw = await self.executor.read_progress(t.handle)
        value: Any = None
        if raw is not None:
            try:
                value = msgspec.json.decode(raw)
            except msgspec.DecodeError:
                # Perhaps read mid-write: look again next tick, but not forever.
                t.bad_progress += 1
                if t.bad_progress < 3:
                    return
                raw = None
        t.progress_mark, t.bad_progress = mark, 0
        if raw is None:
            return
        digest = hashlib.sha256(raw).hexdigest()[:32]
        if digest == t.journal.progress_digest:
            return
        job_id, attempt = t.key
        msg = JobProgress(job_id=job_id, attempt=attempt, at=now(), progress=value)
        await self.bus.publish(
            sj.event_subject(job_id, "progress"),
            msg,
            msg_id=sj.attempt_msg_id(job_id, attempt, "progress", digest),
        )
        t.journal.progress_digest = digest
        await self.save(t)

    # --- the end of a run -----------------------------------------------------------------------

    async def _finish(self, t: Tracked, status: RunStatus) -> None:
        job_id, attempt = t.key
        try:
            with telemetry.span_from(
                t.journal.trace, TRACER, "executor.finish", job_id=job_id, attempt=attempt
            ):
                await self.executor.cleanup(t.handle)
                final = (await self.executor.poll([t.handle])).get(t.key, status)
                if not final.ended:
                    final = status
                await self._pump(t, final, final=True)
                # each stream's end is its own subject's message: sent together, acked together
                await asyncio.gather(*(pump.eof(self._publish) for pump in t.pumps.values()))
                await self._progress(t, final)
                uploaded = await upload_outputs(
                    self.executor, t.handle, self.bus.artifacts, self.settings.artifact_max_bytes
                )
                report = self._finished(t, final, uploaded)
                if t.journal.running_at is None and final.exit_code is not None:
                    # it ran and ended between two polls (a short batch job): it did run
                    await self._phase(t, dataclasses.replace(final, running=True))
                await self.reporter.send(report, sj.attempt_msg_id(job_id, attempt, "finished"))
                await self.executor.mark_reported(t.handle)
        except Exception:
            log.exception("reporting the end of %s attempt %d failed; trying again", job_id, attempt)
            t.finishing = False
            t.retry_at = time.monotonic() + FINISH_RETRY
            return
        self.runs.pop(t.key, None)
        log.info("%s attempt %d %s (exit code %s)", job_id, attempt, report.outcome, report.exit_code)

    def _finished(self, t: Tracked, status: RunStatus, uploaded: Uploaded) -> RunFinished:
        code = status.exit_code
        ended_at = status.ended_at or time.time()
        if t.journal.running_at is not None:
            # never before the start already reported: Docker dates a container that exits at once
            # StartedAt a fraction of a millisecond after its FinishedAt
            ended_at = max(ended_at, t.journal.running_at)
        stop = t.journal.stop
        if stop is not None and not (status.ended_at is not None and status.ended_at < stop.at - MTIME_SLACK):
            outcome, reason = stop.outcome, stop.reason
        elif status.outcome is not None and status.outcome != JobState.SUCCEEDED:
            reason = status.reason or (exit_reason(code) if code is not None else str(status.outcome))
            outcome = status.outcome
        elif code == 0:
            outcome, reason = JobState.SUCCEEDED, None
        elif code is not None:
            outcome, reason = JobState.FAILED, status.reason or exit_reason(code)
        else:
            outcome, reason = JobState.FAILED, status.reason or "the run ended without an exit code"
        job_id, attempt = t.key
        return RunFinished(
            job_id=job_id,
            attempt=attempt,
            node=self.node,
            at=datetime.fromtimestamp(ended_at, UTC),
            outcome=outcome,
            exit_code=code,
            reason=reason,
            usage=_usage(status, round(max(0.0, ended_at - self._began(t, status)), 3)),
            artifacts=uploaded.artifacts,
        )

    @staticmethod
    def _began_running(status: RunStatus, polled_at: float | None) -> float:
        """When the job itself began, not when a poll noticed (a short job may be over by then): the
        backend's record, else the moment before the poll that saw it run (the wrapper had not yet
        written its start, so it began after that); never after it ended or after now."""
        now_ = time.time()
        began = status.started_at or polled_at or now_
        if status.ended_at is not None:
            began = min(began, status.ended_at)
        return min(began, now_)

    @staticmethod
    def _began(t: Tracked, status: RunStatus) -> float:
        """When the run began running: the backend's record, else when it was first seen running."""
        return status.started_at or t.journal.running_at or t.journal.started_at

    async def close(self, timeout: float = 5.0) -> None:
        """Let endings in flight finish briefly; the rest are picked up again after a restart."""
        if self._finishers:
            _, pending = await asyncio.wait(set(self._finishers), timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


def _usage(status: RunStatus, wall: float) -> Usage:
    """The backend's accounting where it has one, the wall time seen here otherwise."""
    if status.usage is None:
        return Usage(wall_seconds=wall)
    if status.usage.wall_seconds is None:
        return msgspec.structs.replace(status.usage, wall_seconds=wall)
    return status.usage


def exit_reason(code: int) -> str:
    """``exit code 3``; codes past 128 from the wrapper name the signal that ended the job."""
    if code > 128:
        try:
            return f"exit code {code} ({signal.Signals(code - 128).name})"
        except ValueError:
            pass
    return f"exit code {code}"
