"""The scheduler's batch work alone, in one process (not a test): CPU seconds per job for what the
pipeline does with commands and reports (decode, load, decide, write, commit), with no NATS in the way.

Jobs go through ``Pipeline.process`` in batches as the pipeline takes them: submits (placed and
dispatched at once on one big node), then ``running`` reports, then ``finished`` reports; messages are
stand-ins that only carry data, and published outbox messages are counted, not sent. CPU is the
process's own (``time.process_time``: the event loop and SQLite's thread), so other load on the machine
slows the run but hardly changes the figure.

    uv run --frozen python -m benchmarks.sched_batch_bench        # SCHED_JOBS=4096 SCHED_BATCH=256
    SCHED_INLINE=0 uv run --frozen python -m benchmarks.sched_batch_bench   # through aiosqlite's thread
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobwire.contracts import v1
from jobwire.scheduler.cluster import Cluster, NodeState
from jobwire.scheduler.core import Core
from jobwire.scheduler.pipeline import Pipeline
from jobwire.scheduler.placement import load_policy
from jobwire.scheduler.settings import SchedulerSettings
from jobwire.store.engine import make_engine, migrate, session_factory

JOBS = int(os.environ.get("SCHED_JOBS", "4096"))
#: SQLite statements in the loop's thread, as the scheduler runs them (0: through aiosqlite's thread)
INLINE = os.environ.get("SCHED_INLINE", "1") != "0"
BATCH = int(os.environ.get("SCHED_BATCH", "256"))


class Msg:
    """What the pipeline reads of a NATS message."""

    def __init__(self, subject: str, data: bytes) -> None:
        self.subject, self.data, self.headers = subject, data, None

    async def ack(self) -> None:
        return None


class Relay:
    """Counts what would be published, and forgets it as the real relay does after a publish."""

    def __init__(self) -> None:
        self.published: list[int] = []
        self.sent = 0
        self.pending = False

    async def forget_published(self, session: Any, *, due: bool = True) -> None:
        from sqlalchemy import delete

        from jobwire.store.jobrecs import OUTBOX

        if self.published and (due or len(self.published) >= 500):  # as the real relay
            await session.execute(delete(OUTBOX).where(OUTBOX.c.id.in_(self.published)))
            self.published = []

    async def publish(self, rows: list[tuple[Any, ...]]) -> None:
        self.sent += len(rows)
        self.published.extend(r[0] for r in rows)


class Access:
    async def apply(self, session: Any, commands: list[Any]) -> list[Any]:
        return []

    async def announce(self, records: list[Any]) -> None:
        return None


async def run(url: str) -> dict[str, Any]:
    await migrate(url)
    engine = make_engine(url, sqlite_inline=INLINE)
    settings = SchedulerSettings(database_url=url, linger=0)
    cluster = Cluster()
    cap = v1.NodeCapacity(slots=JOBS, cpus=float(JOBS))
    cluster.nodes["n1"] = NodeState(name="n1", backend="local", capacity=cap)
    core = Core(settings, load_policy(settings.placement), cluster)
    relay = Relay()

    async def rebuild() -> None:
        return None

    args: dict[str, Any] = {
        "settings": settings,
        "sessions": session_factory(engine),
        "core": core,
        "relay": relay,
        "access": Access(),
        "rebuild": rebuild,
    }
    if "engine" in inspect.signature(Pipeline).parameters:
        args["engine"] = engine
    pipeline = Pipeline(**args)
    spec = v1.JobSpec(command=["true"], expected_runtime=1, labels={"team": "a"})
    ids = [v1.new_job_id() for _ in range(JOBS)]
    at = datetime.now(UTC)

    def submit(i: str) -> Msg:
        return Msg("jobwire.cmd.submit", v1.encode(v1.SubmitJob(job_id=i, spec=spec, owner="bench")))

    def running(i: str) -> Msg:
        return Msg("r", v1.encode(v1.RunRunning(job_id=i, attempt=1, node="n1", at=at)))

    def finished(i: str) -> Msg:
        rep = v1.RunFinished(
            job_id=i, attempt=1, node="n1", at=at, outcome=v1.JobState.SUCCEEDED, exit_code=0
        )
        return Msg("r", v1.encode(rep))

    cpu = {}
    wall0 = time.perf_counter()
    for phase, make, is_cmd in (
        ("submit", submit, True),
        ("running", running, False),
        ("finished", finished, False),
    ):
        c0 = time.process_time()
        for start in range(0, JOBS, BATCH):
            msgs = [make(i) for i in ids[start : start + BATCH]]
            await pipeline.process(msgs if is_cmd else [], [] if is_cmd else msgs, False)  # type: ignore[arg-type]
        cpu[phase] = time.process_time() - c0
    wall = time.perf_counter() - wall0
    close = getattr(pipeline, "close", None)
    if close is not None:
        await close()
    await engine.dispose()
    total = sum(cpu.values())
    return {
        "jobs": JOBS,
        "batch": BATCH,
        "sqlite_inline": INLINE,
        "cpu_ms_per_job": round(total / JOBS * 1000, 3),
        "cpu_ms_per_job_by_phase": {k: round(v / JOBS * 1000, 3) for k, v in cpu.items()},
        "wall_s": round(wall, 2),
        "messages_published": relay.sent,
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="jobwire-batch-") as tmp:
        url = os.environ.get("JOBWIRE_DATABASE_URL") or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        print(json.dumps(asyncio.run(run(url))))


if __name__ == "__main__":
    main()
