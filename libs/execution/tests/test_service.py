"""The service around the runs: heartbeats, micro status, re-adoption of vanished runs, traces."""

from __future__ import annotations

import asyncio
import gc
import os
import signal

import msgspec
import pytest

from jobwire.contracts.v1 import JobState, NodeHeartbeat
from jobwire.contracts.v1 import subjects as sj
from jobwire.execution import ExecutorService
from jobwire.execution.runner.executor import VANISHED
from jobwire.runtime import telemetry
from jobwire.runtime.settings import BusSettings

pytestmark = pytest.mark.integration


async def test_heartbeat_and_micro_status(harness):
    node = "beat-node"
    sub = await harness.bus.nc.subscribe(sj.heartbeat_subject(node))
    svc = await harness.executor(node, labels={"zone": "a"}, pool="cpu", slots=3)
    job = await harness.run(node, {"command": ["sleep", "0.6"]})
    await harness.wait(job, "running")
    for _ in range(5):
        beat = msgspec.json.decode((await sub.next_msg(timeout=5)).data, type=NodeHeartbeat)
        if beat.running:
            break
    await sub.unsubscribe()
    assert (beat.node, beat.backend, beat.pool, beat.labels) == (node, "local", "cpu", {"zone": "a"})
    assert beat.capacity.slots == 3 and beat.instance == svc.instance and beat.interval == 0.5
    assert [(r.job_id, r.attempt) for r in beat.running] == [(job, 1)]

    reply = await harness.bus.nc.request("jobwire.svc.jobwire-executor.status", b"", timeout=5)
    status = msgspec.json.decode(reply.data)
    assert status["node"] == node and status["running"][0]["job_id"] == job
    info = await harness.bus.nc.request("$SRV.INFO.jobwire-executor", b"", timeout=5)
    assert msgspec.json.decode(info.data)["metadata"] == {"node": node, "backend": "local"}
    await harness.wait(job, "finished")


async def test_a_run_that_vanished_while_down_is_reported_failed(harness, until):
    svc = await harness.executor("vanish-node")
    job = await harness.run(svc.node, {"command": ["sleep", "30"]})
    running = await harness.wait(job, "running")
    await svc.stop()
    harness.services.remove(svc)
    os.killpg(running.details["pid"], signal.SIGKILL)  # the wrapper dies too: no exit code is written

    await harness.executor("vanish-node", root=svc.settings.root)
    done = await harness.wait(job, "finished", timeout=10)
    assert (done.outcome, done.exit_code, done.reason) == (JobState.FAILED, None, VANISHED)


async def test_reports_continue_the_trace_of_the_run_job(harness, until):
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    telemetry.setup_tracing("test", processor=SimpleSpanProcessor(exporter))
    svc = await harness.executor()
    with telemetry.tracer("test").start_as_current_span("submit") as parent:
        job = await harness.run(svc.node, {"command": ["true"]})
    trace_id = format(parent.get_span_context().trace_id, "032x")
    await harness.wait(job, "finished")

    def spans() -> dict[str, object]:
        return {s.name: s for s in exporter.get_finished_spans()}

    await until(lambda: "executor.finish" in spans(), what="the finish span ends")
    for name in ("executor.run", "executor.finish"):
        assert format(spans()[name].context.trace_id, "032x") == trace_id
    for kind in ("running", "finished"):
        assert trace_id in harness.headers[(job, kind)]["traceparent"]


async def test_a_journaled_chunk_already_in_the_stream_is_not_sent_again(clean_bus):
    from jobwire.contracts.v1 import LogChunk
    from jobwire.execution import ExecutorSettings
    from jobwire.execution.journal import Journal, LogCursor
    from jobwire.execution.logpump import StreamPump
    from jobwire.execution.runloop import RunLoop

    def pumps(journal: Journal, attempt: int, streams: dict[str, str]) -> list[StreamPump]:
        return [StreamPump("j1", attempt, s, journal.cursor(name)) for name, s in streams.items()]

    loop = RunLoop(None, clean_bus, ExecutorSettings(node="n"))  # type: ignore[arg-type]
    chunk = LogChunk(job_id="j1", attempt=2, stream="stdout", offset=10, data="hello")
    await clean_bus.publish(sj.log_subject("j1", "stdout"), chunk)
    journal = Journal(
        started_at=0,
        logs={"stdout": LogCursor(offset=10, pending=15), "stderr": LogCursor(offset=0, pending=4)},
    )
    await loop._settle_pending(pumps(journal, 2, {"stdout": "stdout", "stderr": "stderr"}))
    assert journal.logs["stdout"].offset == 15  # already published: skipped
    assert journal.logs["stderr"].offset == 0  # nothing on that subject: re-sent
    other = Journal(started_at=0, logs={"stdout": LogCursor(offset=10, pending=15)})
    await loop._settle_pending(pumps(other, 3, {"stdout": "stdout"}))
    assert other.logs["stdout"].offset == 10  # a different attempt's chunk proves nothing

    # a rank's log is judged by its own subject: a Docker rank 1 journals "stdout" but publishes
    # stdout-rank1, where nothing was sent yet (rank 0's chunk at the same offset proves nothing);
    # a SLURM gang's rank1/stdout, published as stdout-rank1, finds its chunk there
    rank1 = Journal(started_at=0, logs={"stdout": LogCursor(offset=10, pending=15)})
    await loop._settle_pending(pumps(rank1, 2, {"stdout": "stdout-rank1"}))
    assert rank1.logs["stdout"].offset == 10
    sent = LogChunk(job_id="j1", attempt=2, stream="stdout-rank1", offset=10, data="rank1")
    await clean_bus.publish(sj.log_subject("j1", "stdout-rank1"), sent)
    gang = Journal(started_at=0, logs={"rank1/stdout": LogCursor(offset=10, pending=15)})
    await loop._settle_pending(pumps(gang, 2, {"stdout": "stdout", "rank1/stdout": "stdout-rank1"}))
    assert gang.logs["rank1/stdout"].offset == 15
    assert gang.logs["stdout"].offset == 0  # nothing pending there


async def test_a_job_naming_an_image_is_never_run_on_the_host_of_a_local_node(harness, tmp_path):
    """The gateway refuses it at submit; one that reaches a node that runs no images fails, unrun."""
    marker = tmp_path / "ran-on-the-host"
    svc = await harness.executor("no-images")
    job = await harness.run(svc.node, {"command": ["touch", str(marker)], "image": "python:3.11-slim"})
    done = await harness.wait(job, "finished")
    assert done.outcome is JobState.FAILED
    assert done.reason is not None and "runs no images" in done.reason and "python:3.11-slim" in done.reason
    assert not marker.exists()


@pytest.mark.parametrize(
    "command", [["true"], ["sleep", "0.3"]], ids=["ends-before-its-launch-is-recorded", "ends-later"]
)
async def test_a_short_job_is_reported_ended_without_waiting_for_the_next_tick(harness, command):
    """A job that ends is polled at once (the local backend hears its wrapper exit), not at the next
    tick: a no-op job held its slot for up to a whole tick interval after it had ended."""
    svc = await harness.executor(tick_interval=30.0)
    await asyncio.sleep(0.2)  # past the start's first tick: the next one is 30 s away
    jobs = [await harness.run(svc.node, {"command": command}) for _ in range(3)]
    for job in jobs:
        done = await harness.wait(job, "finished", timeout=10)
        assert (done.outcome, done.exit_code) == (JobState.SUCCEEDED, 0)
    assert not svc.runs.runs and not svc.runs.heard


async def test_an_arrays_tasks_sent_together_run_each_as_its_own_attempt(harness):
    """A RunArray (an array's tasks dispatched together) to a backend without native arrays starts
    each task as a job of its own, with its own reports and JOBWIRE_ARRAY_INDEX; sent again, it
    starts nothing twice."""
    from jobwire.contracts.v1 import JobSpec, RunArray, RunJob
    from jobwire.contracts.v1.ids import new_job_id

    svc = await harness.executor("array-node", slots=4)
    spec = msgspec.convert({"command": ["sh", "-c", "exit $JOBWIRE_ARRAY_INDEX"]}, JobSpec)
    array_id = new_job_id()
    runs = [
        RunJob(job_id=new_job_id(), attempt=1, node=svc.node, spec=spec, array_id=array_id, array_index=i)
        for i in (0, 3)
    ]
    work = RunArray(job_id=array_id, node=svc.node, runs=runs)
    await harness.bus.publish(sj.exec_subject(svc.node, "run"), work, msg_id=f"{array_id}:a")
    ends = [await harness.wait(r.job_id, "finished") for r in runs]
    assert [(e.outcome, e.exit_code) for e in ends] == [(JobState.SUCCEEDED, 0), (JobState.FAILED, 3)]
    await harness.bus.publish(sj.exec_subject(svc.node, "run"), work, msg_id=f"{array_id}:b")
    await harness.settle(1.5)
    assert [len(harness.of(r.job_id, "finished")) for r in runs] == [1, 1]  # not run again
    assert not svc.runs.runs


async def test_a_started_executor_keeps_its_heap_out_of_full_collections(harness):
    """A full collection walked the executor's whole started heap, holding up job starts and reports
    for 66-123 ms: what exists once it has started is frozen, and given back when it stops."""
    settings = harness.settings("frozen-node")
    svc = ExecutorService(settings, bus_settings=BusSettings(nats_url=harness.nats_url), freeze_heap=True)
    await svc.start()
    harness.services.append(svc)
    assert gc.get_freeze_count() > 10_000
    job = await harness.run("frozen-node", {"command": ["true"]})
    await harness.wait(job, "finished")  # runs as before, frozen
    await svc.stop()
    harness.services.remove(svc)
    assert gc.get_freeze_count() == 0
    shared = await harness.executor("shared-process")  # a service in a process it does not own
    assert gc.get_freeze_count() == 0 and shared.freeze_heap is False
