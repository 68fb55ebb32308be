"""Cancels, holds and releases of native array tasks, gathered per native job: when they cover every
task of the native job that it concerns, ONE command for the native job (``scancel 123``, ``qdel
123``, ``scontrol hold 123``, ``qhold 123``, ``qhold 123[].server``) replaces a command per task;
otherwise each task gets its own (``scancel 123_4``, ``qdel 123 -t 5``, ``qhold 123 -t 5``).

An array's cancel, hold or release reaches the executor as one message per task, handed in one at a
time by the work consumer: each request is asked here and not waited for (waiting out the gathering
window there would send the requests one window apart, each alone). A request that fails is logged;
the run loop's KILL after the stop's grace asks a kill again, a hold shows as not held in the next
polls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Literal

from jobwire.execution.hpc import Phase

if TYPE_CHECKING:
    from .executor import HpcExecutor

log = logging.getLogger(__name__)
#: requests for one native job's tasks asked less than this many seconds apart go out together
WINDOW = 0.3
#: ... or this many while they do not cover the native job yet
WINDOW_PARTIAL = 1.0
#: ... for at most this long from the first: an array's requests reach a loaded executor spread out
WINDOW_MAX = 2.0
Action = Literal["kill", "hold", "release"]
#: a hold and a release of one task cancel out: the later one is what was asked
OPPOSITE: dict[Action, Action] = {"hold": "release", "release": "hold"}


class NativeControl:
    """The native jobs this executor follows, and the kills, holds and releases asked of their tasks."""

    def __init__(self, ex: HpcExecutor) -> None:
        self.ex = ex
        #: native job -> the ids of its tasks followed now (launched or adopted, not seen to end)
        self.live: dict[str, set[str]] = {}
        #: native job -> its tasks already killed one by one (still followed until a poll sees them end)
        self.killed: dict[str, set[str]] = {}
        #: array id -> its native jobs submitted or adopted here
        self.array_jobs: dict[str, set[str]] = {}
        #: native jobs killed whole: later kills of their tasks need no command
        self.whole: set[str] = set()
        self._asked: dict[tuple[str, Action], set[str]] = {}
        self._sending: set[tuple[str, Action]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def follow(self, batch_id: str, array_id: str | None = None) -> None:
        """A task launched or adopted: followed until a poll sees it end."""
        job = self.ex.scheduler.task_job(batch_id)
        if job is not None:
            self.live.setdefault(job, set()).add(batch_id)
            if array_id:
                self.array_jobs.setdefault(array_id, set()).add(job)

    def running_job_of(self, array_id: str) -> str | None:
        """A native job of the array with tasks still followed (the newest), or None."""
        jobs = [j for j in self.array_jobs.get(array_id, set()) if self.live.get(j)]
        return max(jobs, key=lambda j: (len(j), j)) if jobs else None

    def ended(self, batch_id: str) -> None:
        job = self.ex.scheduler.task_job(batch_id) or ""
        tasks = self.live.get(job)
        if tasks is not None:
            tasks.discard(batch_id)
            self.killed.get(job, set()).discard(batch_id)
            if not tasks:
                del self.live[job]
                self.killed.pop(job, None)

    async def kill(self, job: str, batch_id: str) -> None:
        """Ask for the task's kill; it goes out with its siblings' within the gathering window."""
        if job in self.whole or batch_id in self.killed.get(job, ()):
            return  # the batch system's kill is the same for TERM and KILL: once is enough
        self._ask(job, "kill", batch_id)

    async def hold(self, job: str, batch_id: str, release: bool) -> None:
        """Ask for the task's hold (or release); it goes out with its siblings' within the window."""
        action: Action = "release" if release else "hold"
        self._asked.get((job, OPPOSITE[action]), set()).discard(batch_id)
        self._ask(job, action, batch_id)

    async def settled(self) -> None:
        """Until every request asked so far has been sent (for a clean stop and for tests)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _ask(self, job: str, action: Action, batch_id: str) -> None:
        key = (job, action)
        self._asked.setdefault(key, set()).add(batch_id)
        if key not in self._sending:
            self._sending.add(key)
            task = asyncio.create_task(self._send(job, action))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _gathered(self, key: tuple[str, Action]) -> set[str]:
        """The requests of ``key`` once they stop coming: none for WINDOW while they cover the native
        job (one command will do), none for WINDOW_PARTIAL while they do not yet (a loaded executor
        is handed an array's requests spread out; a lone task's request waits that much longer)."""
        job, action = key
        last = time.monotonic()
        deadline = last + WINDOW_MAX
        seen = len(self._asked.get(key, ()))
        while True:
            await asyncio.sleep(WINDOW)
            now = time.monotonic()
            asked = self._asked.get(key, set())
            if len(asked) > seen:
                seen, last = len(asked), now
            elif not asked or self._covers(job, action, asked) or now - last >= WINDOW_PARTIAL:
                break
            if now >= deadline:
                break
        self._sending.discard(key)
        return self._asked.pop(key, set())

    def _covers(self, job: str, action: Action, asked: set[str]) -> bool:
        """Whether ``asked`` reaches every task of ``job`` that ``action`` concerns."""
        tasks = self._kill_rest(job) if action == "kill" else self._waiting(job)
        return bool(tasks) and tasks <= asked

    def _kill_rest(self, job: str) -> set[str]:
        """The tasks followed and not killed alone yet (those killed stay followed until a poll sees
        them end)."""
        return self.live.get(job, set()) - self.killed.get(job, set())

    def _waiting(self, job: str) -> set[str]:
        """The followed tasks that still wait, as the lists saw them (one never listed yet counts as
        waiting): an array's hold reaches only its waiting tasks, the batch system leaves the running
        ones running (:meth:`BatchSystem.tasks_target`)."""
        done = (Phase.RUNNING, Phase.DONE)
        return {t for t in self._kill_rest(job) if self.ex.poller.last_phase(t) not in done}

    async def _send(self, job: str, action: Action) -> None:
        asked = await self._gathered((job, action))
        if not asked:
            return  # every one was taken back by the opposite request
        try:
            if action == "kill":
                await self._send_kills(job, asked)
            else:
                await self._send_holds(job, asked, release=action == "release")
        except Exception as e:
            log.warning("%s of tasks of native array job %s failed: %s", action, job, e)

    async def _send_kills(self, job: str, asked: set[str]) -> None:
        ex = self.ex
        live = self.live.get(job, set())
        if self._covers(job, "kill", asked):
            ex._count("kill")
            await ex.scheduler.kill(ex.transport, job)
            self.whole.add(job)
            log.info("cancelled native array job %s whole (%d tasks)", job, len(asked))
            return
        for batch_id in sorted(asked):
            ex._count("kill")
            await ex.scheduler.kill(ex.transport, batch_id)
            if batch_id in live:
                self.killed.setdefault(job, set()).add(batch_id)

    async def _send_holds(self, job: str, asked: set[str], release: bool) -> None:
        """One command for the native job when the request covers every task of it that still waits."""
        ex = self.ex
        what: Action = "release" if release else "hold"
        if self._covers(job, what, asked):
            ex._count(what)
            await ex.scheduler.hold_tasks(ex.transport, job, sorted(asked), release)
            ex.poller.refresh_soon()
            log.info("%s of native array job %s whole (%d waiting tasks)", what, job, len(asked))
            return
        for batch_id in sorted(asked):
            ex._count(what)
            try:
                await ex.scheduler.hold(ex.transport, batch_id, release)
            except Exception as e:
                log.warning("%s of %s refused: %s", what, batch_id, e)
        ex.poller.refresh_soon()
