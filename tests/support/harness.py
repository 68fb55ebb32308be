"""An executor driven through the bus as the scheduler would, and what it reports: shared by the
tests of every executor backend (libs/execution, executor-hpc)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from jobwire.contracts.v1 import (
    CancelRun,
    JobSpec,
    LogChunk,
    Report,
    ReportMessage,
    RunFinished,
    RunJob,
    RunReports,
    RunRunning,
    RunStarting,
    new_job_id,
)
from jobwire.contracts.v1 import subjects as sj
from jobwire.execution import ExecutorService, ExecutorSettings
from jobwire.execution.executor import Executor
from jobwire.runtime.bus import Bus
from jobwire.runtime.settings import BusSettings


class Harness:
    def __init__(self, bus: Bus, nats_url: str, tmp: Path) -> None:
        self.bus = bus
        self.nats_url = nats_url
        self.tmp = tmp
        self.reports: list[Report] = []
        #: the grouped messages among them (several reports in one)
        self.groups: list[RunReports] = []
        self.headers: dict[tuple[str, str], dict[str, str]] = {}
        self._sub: Any = None
        self.services: list[ExecutorService] = []

    def settings(self, node: str | None = None, **kw: Any) -> ExecutorSettings:
        node = node or f"n-{uuid.uuid4().hex[:8]}"
        base: dict[str, Any] = {
            "node": node,
            "root": str(self.tmp / node),
            "tick_interval": 0.1,
            "heartbeat_interval": 0.5,
            "kill_grace": 1.0,
        }
        return ExecutorSettings(**{**base, **kw})

    async def executor(self, node: str | None = None, **kw: Any) -> ExecutorService:
        svc = ExecutorService(self.settings(node, **kw), bus_settings=BusSettings(nats_url=self.nats_url))
        await svc.start()
        self.services.append(svc)
        return svc

    async def serve(self, executor: Executor) -> ExecutorService:
        """A service around an executor built by the test (a batch system adapter of its choosing)."""
        svc = ExecutorService(
            executor.settings, bus_settings=BusSettings(nats_url=self.nats_url), executor=executor
        )
        await svc.start()
        self.services.append(svc)
        return svc

    async def run(
        self,
        node: str,
        spec: JobSpec | dict[str, Any],
        *,
        job_id: str | None = None,
        attempt: int = 1,
        timeout: float | None = None,
        msg_id: str | None = None,
    ) -> str:
        job_id = job_id or new_job_id()
        if isinstance(spec, dict):
            spec = msgspec.convert(spec, JobSpec)
        msg = RunJob(job_id=job_id, attempt=attempt, node=node, spec=spec, timeout=timeout)
        await self.bus.publish(sj.exec_subject(node, "run"), msg, msg_id=msg_id or f"{job_id}:{attempt}:run")
        return job_id

    async def cancel(self, node: str, job_id: str, attempt: int = 1, **kw: Any) -> None:
        msg = CancelRun(job_id=job_id, attempt=attempt, node=node, **kw)
        await self.bus.publish(
            sj.exec_subject(node, "cancel"), msg, msg_id=f"{job_id}:{attempt}:cancel:{time.time()}"
        )

    async def _pull(self) -> None:
        if self._sub is None:
            self._sub = await self.bus.js.pull_subscribe(
                sj.REPORT_SUBJECTS, durable="test-reports", stream=sj.REPORT_STREAM
            )
        try:
            msgs = await self._sub.fetch(64, timeout=0.2)
        except TimeoutError:
            return
        kinds = {RunStarting: "starting", RunRunning: "running", RunFinished: "finished"}
        for m in msgs:
            got = msgspec.json.decode(m.data, type=ReportMessage)
            if isinstance(got, RunReports):  # a group: each report with its own trace context
                self.groups.append(got)
                traces = got.traces or [{} for _ in got.reports]
                pairs = list(zip(got.reports, traces, strict=True))
            else:
                pairs = [(got, dict(m.headers or {}))]
            for report, headers in pairs:
                self.reports.append(report)
                self.headers[(report.job_id, kinds[type(report)])] = headers
            await m.ack()

    def of(self, job_id: str, kind: str) -> list[Any]:
        tp = {"starting": RunStarting, "running": RunRunning, "finished": RunFinished}[kind]
        return [r for r in self.reports if r.job_id == job_id and isinstance(r, tp)]

    async def wait(self, job_id: str, kind: str, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            found = self.of(job_id, kind)
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no {kind} report for {job_id} in {timeout} s; got {self.reports}")
            await self._pull()

    async def settle(self, seconds: float = 0.5) -> None:
        """Collect whatever else is reported for a while (to prove nothing more comes)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await self._pull()

    async def logs(self, job_id: str) -> list[LogChunk]:
        sub = await self.bus.js.pull_subscribe(sj.job_logs_filter(job_id), stream=sj.LOG_STREAM)
        out: list[LogChunk] = []
        try:
            while True:
                try:
                    msgs = await sub.fetch(256, timeout=0.3)
                except TimeoutError:
                    break
                for m in msgs:
                    out.append(msgspec.json.decode(m.data, type=LogChunk))
                    await m.ack()
        finally:
            await sub.unsubscribe()
        return out

    async def text(self, job_id: str, stream: str, attempt: int = 1) -> str:
        chunks = [c for c in await self.logs(job_id) if c.stream == stream and c.attempt == attempt]
        data = [c for c in chunks if not c.eof]
        eofs = [c for c in chunks if c.eof]
        assert len(eofs) == 1, f"{stream}: expected one eof chunk, got {eofs}"
        offsets = [c.offset for c in data]
        assert offsets == sorted(set(offsets)), f"{stream}: duplicate or unordered chunks {offsets}"
        text = "".join(c.data for c in data)
        assert eofs[0].offset == len(text.encode()), "eof offset is the stream's length"
        return text


async def eventually(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(0.05)
