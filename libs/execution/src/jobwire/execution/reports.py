"""Reports to the scheduler, grouped while a publish is in flight (group commit, as databases do).

A sender still returns only once its report is stored in the stream (its caller then saves its
journal, or acks the work), so nothing about durability changes. What changes is that every report
handed in while the previous publish awaits its ack leaves in one ``RunReports`` message: a node that
starts, runs and ends many jobs at once sends one message per round trip instead of one per report,
and the scheduler fetches, applies and acks one. A report that comes alone goes as before, on its own
subject with its own message id.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging

from jobwire.contracts.v1 import Report, RunFinished, RunReports, RunRunning, RunStarting
from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime import telemetry
from jobwire.runtime.bus import Bus

log = logging.getLogger(__name__)
KINDS: dict[type, str] = {RunStarting: "starting", RunRunning: "running", RunFinished: "finished"}
#: most reports in one message (a RunFinished with its usage and artifacts is well under 2 KiB)
MAX_GROUP = 256


class _Pending:
    __slots__ = ("future", "msg_id", "report", "trace")

    def __init__(self, report: Report, msg_id: str, trace: dict[str, str], future: asyncio.Future[None]):
        self.report, self.msg_id, self.trace, self.future = report, msg_id, trace, future


class Reporter:
    """One per node; ``send`` may be called from any number of tasks at once."""

    def __init__(self, bus: Bus, node: str, max_group: int = MAX_GROUP) -> None:
        self.bus = bus
        self.node = node
        self.max_group = max_group
        self._queue: list[_Pending] = []
        self._drainer: asyncio.Task[None] | None = None
        #: messages published and reports they carried (for status and tests)
        self.messages = 0
        self.reports = 0

    async def send(self, report: Report, msg_id: str) -> None:
        """Return once ``report`` is stored in the report stream (raise when its publish failed)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(report, msg_id, telemetry.inject(), future))
        if self._drainer is None or self._drainer.done():
            # an empty context: no sender's span is current there, so each report keeps its own trace
            self._drainer = asyncio.create_task(
                self._drain(), name=f"reports {self.node}", context=contextvars.Context()
            )
        await asyncio.shield(future)  # a cancelled sender leaves its report to be sent

    async def _drain(self) -> None:
        while self._queue:
            await asyncio.sleep(0)  # senders woken in this same turn of the loop join this message
            group, self._queue = self._queue[: self.max_group], self._queue[self.max_group :]
            try:
                await self._publish(group)
            except Exception as e:
                for p in group:
                    if not p.future.done():
                        p.future.set_exception(e)
            else:
                self.messages += 1
                self.reports += len(group)
                for p in group:
                    if not p.future.done():
                        p.future.set_result(None)

    async def _publish(self, group: list[_Pending]) -> None:
        if len(group) == 1:
            p = group[0]
            subject = sj.report_subject(self.node, p.report.job_id, KINDS[type(p.report)])
            # the node in the id: the ranks of a gang report the same job and attempt from several nodes
            await self.bus.publish(subject, p.report, msg_id=f"{p.msg_id}:{self.node}", headers=p.trace)
            return
        # the same reports again (a resend after a crash) make the same id: the stream drops the copy
        digest = hashlib.sha256("\n".join(p.msg_id for p in group).encode()).hexdigest()[:32]
        msg = RunReports(node=self.node, reports=[p.report for p in group], traces=[p.trace for p in group])
        await self.bus.publish(sj.reports_subject(self.node), msg, msg_id=f"reports:{self.node}:{digest}")
