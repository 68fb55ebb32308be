"""The queue poller: one list call for every batch job of the cluster, never more often than the poll
interval, backing off while the batch system does not answer; accounting asked together with a fresh
list, for the jobs that left the queue. Where accounting records a job's end at once (SGE,
``BatchSystem.accounting_ends_jobs``), it is also asked between two lists, for the jobs whose wrapper
wrote its exit code: one call for all of them, at most every ``accounting_interval``. The exit code
file is only the hint to ask (a job could write it early): the end is accounting's final record.

Apart from the batch lifecycle (``executor.py``) because it is the part with memory across ticks: the
last answer, when the next call is due, since when a job is missing from the queue.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass

from jobwire.execution.executor import StartDeferred
from jobwire.execution.hpc import Accounting, BatchSystem, Phase, QueueEntry
from jobwire.execution.hpc.base import SchedulerError
from jobwire.execution.transport import Transport, TransportError

from .settings import HpcSettings

log = logging.getLogger(__name__)
#: pending jobs' reasons (SGE's ``qstat -j``, one call for all of them) are asked at most this often
REASONS_INTERVAL = 5.0


@dataclass
class _Seen:
    """What the last list call said, reused until ``poll_interval`` has passed."""

    at: float = 0.0
    entries: dict[str, QueueEntry] | None = None
    ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class QueueView:
    """One poll's answer: the queue (None: unknown), whether it was asked just now, and accounting for
    the ids that left it."""

    queue: dict[str, QueueEntry] | None
    fresh: bool
    left: list[str]
    accounting: dict[str, Accounting]


class QueuePoller:
    def __init__(
        self,
        scheduler: BatchSystem,
        transport: Transport,
        hpc: HpcSettings,
        count: Callable[[str], None],
        ready: Callable[[], Awaitable[None]],
    ) -> None:
        self.scheduler = scheduler
        self.transport = transport
        self.hpc = hpc
        self._count = count
        #: the adapter's one-time preparation, retried before a list (StartDeferred while down)
        self._ready = ready
        #: why pending jobs wait, by batch id, where the list does not say (SGE), and when last asked
        self._reasons: dict[str, str] = {}
        self._reasons_at = -REASONS_INTERVAL
        self._seen = _Seen()
        self._acct: dict[str, Accounting] = {}
        self._interval = hpc.poll_interval
        self._next_list = 0.0
        self._gone_since: dict[str, float] = {}
        #: where the newest list that asked for it saw each id (a list of fewer ids, when some runs
        #: sat a tick out, does not make the others unknown)
        self._phases: dict[str, Phase] = {}
        #: the ids the last list no longer showed (asked of accounting until it has them), and when
        #: accounting may be asked again (``accounting_ends_jobs`` adapters)
        self._want: set[str] = set()
        self._next_acct = 0.0

    def refresh_soon(self) -> None:
        """Ask the batch system on the next poll (after a kill or hold, to show its effect)."""
        self._next_list = 0.0

    async def _list(self, ids: list[str]) -> tuple[dict[str, QueueEntry] | None, bool]:
        now = time.monotonic()
        if now < self._next_list:
            return (self._seen.entries if set(ids) <= self._seen.ids else None), False
        self._count("list")
        # the slot is taken before the first await: runs ending at once each poll their own handle, and
        # every one of them passed the check above while the first list call was still out
        self._next_list = now + self._interval
        try:
            await self._ready()
            entries = await self.scheduler.list(self.transport, ids)
        except (SchedulerError, TransportError, StartDeferred) as e:
            self._interval = min(self.hpc.max_backoff, max(self._interval * 2, self.hpc.poll_interval))
            self._next_list = now + self._interval
            log.warning("listing %d batch jobs failed (next try in %.0f s): %s", len(ids), self._interval, e)
            return None, False
        self._interval = self.hpc.poll_interval
        self._next_list = now + self._interval
        entries = await self._with_reasons(entries, now)
        self._seen = _Seen(now, entries, frozenset(ids))
        for i in ids:
            entry = entries.get(i)
            self._phases[i] = Phase.DONE if entry is None else entry.phase
        return entries, True

    async def _with_reasons(self, entries: dict[str, QueueEntry], now: float) -> dict[str, QueueEntry]:
        """The pending jobs' reasons filled in from one reasons call (at most every few seconds)."""
        pending = sorted(i for i, e in entries.items() if e.phase is Phase.QUEUED and not e.reason)
        if not pending:
            return entries
        if now - self._reasons_at >= REASONS_INTERVAL:
            self._reasons_at = now
            if self.scheduler.build_reasons(pending) is not None:
                self._count("reasons")
                try:
                    self._reasons = await self.scheduler.reasons(self.transport, pending)
                except (SchedulerError, TransportError) as e:
                    log.warning("asking why %d batch jobs wait failed: %s", len(pending), e)
        return {
            i: dataclasses.replace(e, reason=self._reasons[i]) if i in pending and i in self._reasons else e
            for i, e in entries.items()
        }

    async def view(
        self, ids: Sequence[str], since: Callable[[], float], ending: Collection[str] = ()
    ) -> QueueView:
        """The queue for ``ids``; ``since`` gives the earliest submit time, for accounting's window;
        ``ending``: the ids whose wrapper wrote its exit code (asked of accounting at once where
        accounting records an end when it happens). ``left`` holds the ids the list no longer shows
        and those accounting already has a final record of."""
        queue, fresh = await self._list(list(ids))
        gone = [] if queue is None else [i for i in ids if i not in queue or queue[i].phase is Phase.DONE]
        if queue is not None:
            listed = set(ids).difference(gone)  # sets: 300 ids made list scans 90,000 compares a tick
            for i in listed.intersection(self._gone_since):
                self._gone_since.pop(i, None)
        if self.scheduler.accounting_ends_jobs:
            if fresh:
                self._want = set(gone)
            await self._account_ending(ids, ending, since)
        elif gone and fresh:
            await self._account(gone, since, replace=True)
        if queue is None:
            done = [i for i in ids if self._final(i)]
            return QueueView(None, False, done, self._acct) if done else QueueView(None, False, [], {})
        left = [i for i in ids if queue.get(i) is not None and queue[i].phase is not Phase.DONE]
        left = gone + [i for i in left if self._final(i)]
        return QueueView(queue, fresh, left, self._acct)

    def _final(self, batch_id: str) -> bool:
        acct = self._acct.get(batch_id)
        return acct is not None and acct.final

    async def _account_ending(
        self, ids: Sequence[str], ending: Collection[str], since: Callable[[], float]
    ) -> None:
        """One accounting call for every job that left the last list or wrote its exit code and has
        no final record yet, at most every ``accounting_interval``."""
        need = [i for i in ids if (i in self._want or i in ending) and not self._final(i)]
        now = time.monotonic()
        if not need or now < self._next_acct:
            return
        self._next_acct = now + self.hpc.accounting_interval
        await self._account(need, since, replace=False, keep=frozenset(ids))

    async def _account(
        self,
        ids: list[str],
        since: Callable[[], float],
        replace: bool,
        keep: frozenset[str] = frozenset(),
    ) -> None:
        self._count("accounting")
        try:
            found = await self.scheduler.account(self.transport, ids, since())
        except (SchedulerError, TransportError) as e:
            log.warning("accounting for %d batch jobs failed: %s", len(ids), e)
            return
        if replace:
            self._acct = found
        else:  # records of jobs still followed are kept until their end is reported
            self._acct = {**{k: v for k, v in self._acct.items() if k in keep}, **found}

    def last_phase(self, batch_id: str) -> Phase | None:
        """Where the newest list that asked for ``batch_id`` saw it (DONE: not shown; None: never
        asked yet)."""
        return self._phases.get(batch_id)

    def gone_for(self, batch_id: str, now: float) -> float:
        """Seconds since ``batch_id`` was first seen missing from the queue."""
        return now - self._gone_since.setdefault(batch_id, now)

    def forget(self, batch_id: str) -> None:
        self._gone_since.pop(batch_id, None)
        self._phases.pop(batch_id, None)
