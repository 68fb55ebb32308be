"""A scheduler in-process against real NATS and a real database, and fake nodes that speak the bus protocol.

The fake node stands in for an executor so scheduler decisions can be checked message by message;
end-to-end tests in tests/ use the real executors.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from datetime import UTC, datetime

from nats.js.api import AckPolicy, ConsumerConfig

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime.bus import Bus

S = v1.JobState


def utcnow() -> datetime:
    return datetime.now(UTC)


class Events:
    """Every JobTransitioned seen on jobwire.evt.>, by job."""

    def __init__(self) -> None:
        self.by_job: dict[str, list[v1.JobTransitioned]] = defaultdict(list)
        self.changed = asyncio.Condition()

    async def start(self, bus: Bus) -> None:
        async def cb(msg):  # type: ignore[no-untyped-def]
            ev = v1.decode(msg.data, v1.Event)
            if isinstance(ev, v1.JobTransitioned):
                async with self.changed:
                    self.by_job[ev.job_id].append(ev)
                    self.changed.notify_all()

        self.sub = await bus.nc.subscribe("jobwire.evt.job.>", cb=cb)

    def states(self, job_id: str) -> list[str]:
        return [e.state.value for e in self.by_job[job_id]]

    async def wait(self, pred, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(pred), timeout)

    async def wait_state(self, job_id: str, state: str, timeout: float = 30.0) -> None:
        await self.wait(lambda: state in self.states(job_id), timeout)


class FakeNode:
    """Heart-beats like an executor and records the work it is sent; reports only when told to."""

    def __init__(
        self,
        bus: Bus,
        name: str,
        *,
        slots: int = 1,
        cpus: float = 4,
        gpus: int = 0,
        backend: str = "local",
        native_arrays: bool = False,
        owner: str | None = None,
    ):
        self.bus, self.name = bus, name
        self.capacity = v1.NodeCapacity(
            slots=slots, cpus=cpus, gpus=gpus, native_arrays=native_arrays, owner=owner
        )
        self.backend = backend
        self.instance = uuid.uuid4().hex
        self.runs: dict[str, v1.RunJob] = {}
        self.cancels: list[v1.CancelRun] = []
        self.holds: list[v1.HoldRun] = []
        self.purges: list[v1.PurgeJob] = []
        #: the RunArray messages (an array's tasks sent together), in order received
        self.arrays: list[v1.RunArray] = []
        self.running: set[tuple[str, int]] = set()
        self.beating = True
        self.stopped = False
        self.received = asyncio.Condition()
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> FakeNode:
        cfg = ConsumerConfig(durable_name=f"exec-{self.name}", ack_policy=AckPolicy.EXPLICIT)
        self.sub = await self.bus.js.pull_subscribe(
            sj.exec_filter(self.name), durable=f"exec-{self.name}", stream=sj.EXEC_STREAM, config=cfg
        )
        self.tasks = [asyncio.create_task(self._beat()), asyncio.create_task(self._consume())]
        return self

    async def stop(self) -> None:
        self.stopped = True
        for t in self.tasks:
            t.cancel()
        await asyncio.wait(self.tasks, timeout=5)

    async def _beat(self) -> None:
        while not self.stopped:
            if self.beating:
                beat = v1.NodeHeartbeat(
                    node=self.name,
                    backend=self.backend,
                    capacity=self.capacity,
                    at=utcnow(),
                    instance=self.instance,
                    running=[v1.RunRef(job_id=j, attempt=a) for j, a in self.running],
                )
                await self.bus.publish_core(sj.heartbeat_subject(self.name), beat)
            await asyncio.sleep(0.1)

    async def _consume(self) -> None:
        while not self.stopped:
            try:
                msgs = await self.sub.fetch(50, timeout=0.5)
            except TimeoutError:
                continue
            for m in msgs:
                work = v1.decode(m.data, v1.Work)
                async with self.received:
                    if isinstance(work, v1.RunJob):
                        self.runs[work.job_id] = work
                        self.running.add((work.job_id, work.attempt))
                    elif isinstance(work, v1.RunArray):
                        self.arrays.append(work)
                        for run in work.runs:
                            self.runs[run.job_id] = run
                            self.running.add((run.job_id, run.attempt))
                    elif isinstance(work, v1.HoldRun):
                        self.holds.append(work)
                    elif isinstance(work, v1.PurgeJob):
                        self.purges.append(work)
                    else:
                        self.cancels.append(work)
                    self.received.notify_all()
                await m.ack()

    async def wait_runs(self, n: int, timeout: float = 30.0) -> None:
        async with self.received:
            await asyncio.wait_for(self.received.wait_for(lambda: len(self.runs) >= n), timeout)

    async def wait_holds(self, n: int, timeout: float = 30.0) -> list[v1.HoldRun]:
        async with self.received:
            await asyncio.wait_for(self.received.wait_for(lambda: len(self.holds) >= n), timeout)
        return self.holds

    async def wait_cancel(self, job_id: str, timeout: float = 30.0) -> v1.CancelRun:
        async with self.received:
            await asyncio.wait_for(
                self.received.wait_for(lambda: any(c.job_id == job_id for c in self.cancels)), timeout
            )
        return next(c for c in self.cancels if c.job_id == job_id)

    async def report(self, job_id: str, kind: str, **kw) -> None:  # type: ignore[no-untyped-def]
        attempt = kw.pop("attempt", None) or self.runs[job_id].attempt
        msg_id = kw.pop("msg_id", None) or sj.attempt_msg_id(job_id, attempt, kind)
        cls = {"starting": v1.RunStarting, "running": v1.RunRunning, "finished": v1.RunFinished}[kind]
        msg = cls(job_id=job_id, attempt=attempt, node=self.name, at=utcnow(), **kw)
        if kind == "finished":
            self.running.discard((job_id, attempt))
        await self.bus.publish(sj.report_subject(self.name, job_id, kind), msg, msg_id=msg_id)


async def submit(bus: Bus, spec: v1.JobSpec, job_id: str | None = None, owner: str | None = None) -> str:
    job_id = job_id or v1.new_job_id()
    command = v1.SubmitJob(job_id=job_id, spec=spec, submitted_at=utcnow())
    if owner is not None:
        command.owner = owner
    await bus.publish(sj.cmd_subject("submit"), command, msg_id=job_id)
    return job_id


def _new(node: FakeNode, done: set[tuple[str, int]]) -> list[tuple[str, int]]:
    return [(j, r.attempt) for j, r in node.runs.items() if (j, r.attempt) not in done]


async def finish_every_run(node: FakeNode) -> None:
    """Report each run the node is sent as started and succeeded at once, as a node running ``true``
    would (a task: cancel it to stop)."""
    done: set[tuple[str, int]] = set()
    while True:
        async with node.received:
            await node.received.wait_for(lambda: bool(_new(node, done)))
            todo = _new(node, done)
        for job_id, attempt in todo:
            done.add((job_id, attempt))
            await node.report(job_id, "starting", attempt=attempt)
            await node.report(job_id, "running", attempt=attempt)
            await node.report(job_id, "finished", attempt=attempt, outcome=S.SUCCEEDED, exit_code=0)


async def answer_files_as_gone(bus: Bus, node: str):  # type: ignore[no-untyped-def]
    """Answer the node's file requests as an executor whose job directories were cleaned up: 404."""

    async def reply(msg):  # type: ignore[no-untyped-def]
        req = v1.decode(msg.data, v1.FilesRequest)
        gone = v1.FilesReply(status=404, error=f"there is no {req.path!r} in job {req.job_id} here")
        await msg.respond(v1.encode(gone))

    return await bus.nc.subscribe(sj.files_subject(node), cb=reply)
