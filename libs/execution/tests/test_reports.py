"""Reports handed in while a publish is in flight leave together, each stored once, in order."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import msgspec
import pytest

from jobwire.contracts.v1 import ReportMessage, RunReports, RunRunning, RunStarting
from jobwire.contracts.v1 import subjects as sj
from jobwire.execution.reports import Reporter

pytestmark = pytest.mark.integration
AT = datetime(2026, 1, 1, tzinfo=UTC)


async def stored(bus) -> list[tuple[str, object]]:  # type: ignore[no-untyped-def]
    sub = await bus.js.pull_subscribe(sj.REPORT_SUBJECTS, stream=sj.REPORT_STREAM)
    out = []
    try:
        while True:
            for m in await sub.fetch(100, timeout=0.5):
                out.append((m.subject, msgspec.json.decode(m.data, type=ReportMessage)))
                await m.ack()
    except TimeoutError:
        return out


async def test_concurrent_reports_leave_in_few_messages_each_report_once_in_order(clean_bus):
    reporter = Reporter(clean_bus, "n1")
    starts = [RunStarting(job_id=f"job{i:02d}", attempt=1, node="n1", at=AT) for i in range(40)]
    runs = [RunRunning(job_id=f"job{i:02d}", attempt=1, node="n1", at=AT) for i in range(40)]

    async def one(i: int) -> None:
        await reporter.send(starts[i], f"job{i:02d}:1:starting")
        await reporter.send(runs[i], f"job{i:02d}:1:running")

    await asyncio.gather(*(one(i) for i in range(40)))
    assert reporter.reports == 80
    assert reporter.messages < 80 // 4  # grouped while each publish awaited its ack
    got = await stored(clean_bus)
    assert len(got) == reporter.messages
    flat = []
    for subject, msg in got:
        if isinstance(msg, RunReports):
            assert subject == sj.reports_subject("n1") and msg.node == "n1"
            assert len(msg.traces) == len(msg.reports)
            flat.extend(msg.reports)
        else:
            flat.append(msg)
    assert sorted((r.job_id, type(r).__name__) for r in flat) == sorted(
        [(s.job_id, "RunStarting") for s in starts] + [(r.job_id, "RunRunning") for r in runs]
    )
    for i in range(40):  # each job's running comes after its starting
        kinds = [type(r).__name__ for r in flat if r.job_id == f"job{i:02d}"]
        assert kinds == ["RunStarting", "RunRunning"]


async def test_a_lone_report_goes_alone_on_its_subject_and_a_resent_group_is_dropped(clean_bus):
    reporter = Reporter(clean_bus, "n1")
    await reporter.send(RunStarting(job_id="solo", attempt=1, node="n1", at=AT), "solo:1:starting")
    group = [RunRunning(job_id=f"g{i}", attempt=1, node="n1", at=AT) for i in range(3)]
    for _ in range(2):  # the same group twice (an executor that crashed before saving its journal)
        await asyncio.gather(*(reporter.send(r, f"{r.job_id}:1:running") for r in group))
    got = await stored(clean_bus)
    assert got[0] == (sj.report_subject("n1", "solo", "starting"), got[0][1])
    assert isinstance(got[0][1], RunStarting)
    groups = [m for _, m in got if isinstance(m, RunReports)]
    assert len(got) == 2 and len(groups) == 1  # the second copy had the same id: not stored
    assert [r.job_id for r in groups[0].reports] == ["g0", "g1", "g2"]
