"""Native array jobs: the tasks of one array dispatched together (``RunArray``) become ONE batch job
(``sbatch --array=0-19%5``, ``qsub -t 1-20 -tc 5``).

Each task keeps its own attempt directory (wrapper, ``batch.args`` with its own
``JOBWIRE_ARRAY_INDEX``, stdout, stderr, exit code; run.json and the submit marker in the executor's
tree, as every attempt's) and its own ``batch_id``: the native task's id
(``123_4``, ``123.5``), which the poller lists, accounts and kills like a job's, so each task reports
its own state, exit code and logs, a restart re-adopts each task from its directory, and a cancel of
one task cancels only that native task. Native task ids are the tasks' positions in the group
(from the adapter's first id), so they stay within the batch system's array size limit whatever
the jobwire index; the script maps them to the task directories with a ``case`` over checked paths.

The group's script, and the output of anything that fails before a task's own redirect, live in
the first task's directory (``array.sh``, ``array.out``, ``array.err``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from jobwire.contracts.v1 import RunJob
from jobwire.execution.attempt import layout as L
from jobwire.execution.executor import RunHandle, StartDeferred, StartRefused
from jobwire.execution.hpc import BatchRequest
from jobwire.execution.hpc.base import SchedulerError, SchedulerUnavailable
from jobwire.execution.runner import prepare_wrapped
from jobwire.execution.transport.local import LocalTransport

if TYPE_CHECKING:
    from .executor import HpcExecutor

log = logging.getLogger(__name__)
ARRAY_SCRIPT = "array.sh"
#: in each task's own directory before the submit: the group's batch name and the task's native id
SUBMITTING = "submitting"
BATCH_ID = "batch_id"


async def start_array(ex: HpcExecutor, runs: Sequence[RunJob]) -> list[RunHandle | BaseException]:
    """One native array job for ``runs`` (tasks of one array, in index order); one result per run."""
    await ex._ready()
    t = ex.transport
    dirs = [ex.files().dir(r.job_id, r.attempt) for r in runs]
    probes = await t.probe([d.private for d in dirs], read=[SUBMITTING, BATCH_ID])
    out: dict[int, RunHandle | BaseException] = {}
    todo: list[int] = []
    for i, (run, d, probe) in enumerate(zip(runs, dirs, probes, strict=True)):
        if BATCH_ID in probe.files:
            out[i] = ex._new_handle(run, d.path, probe.files[BATCH_ID].decode().strip())
        elif SUBMITTING in probe.files:
            try:
                out[i] = await _found_again(ex, run, d, probe.files[SUBMITTING].decode())
            except LookupError:
                todo.append(i)  # the earlier submit never reached the batch system
            except Exception as e:
                out[i] = e
        else:
            todo.append(i)
    if todo:
        for i, result in zip(todo, await _submit(ex, [runs[i] for i in todo]), strict=True):
            out[i] = result
    return [out[i] for i in range(len(runs))]


async def _found_again(ex: HpcExecutor, run: RunJob, d: L.AttemptDir, marker: str) -> RunHandle:
    """A task whose group was submitted before a crash cut the start short: the group is found by
    its batch name and the task takes its native id in it (LookupError: the submit never arrived)."""
    name, _, task = marker.strip().partition("\n")
    ex._count("find")
    try:
        ids = await ex.scheduler.find(ex.transport, name)
    except SchedulerUnavailable as e:
        raise StartDeferred(f"waiting for {ex.scheduler.name}: {e}") from e
    if not ids:
        [probe] = await ex.transport.probe([d.logs], stat=["stdout", "stderr", L.EXIT_CODE])
        if probe.stats:
            raise StartRefused(
                f"the native array {name} was submitted before an executor crash and has already "
                "left the queue; it is not submitted again"
            )
        raise LookupError(name)
    job = sorted(ids, key=lambda i: (len(i), i))[0]
    batch_id = ex.scheduler.task_id(job, int(task))
    await ex.transport.write_file(d.own(BATCH_ID), f"{batch_id}\n".encode())
    log.info("%s attempt %d was submitted before a crash as %s", run.job_id, run.attempt, batch_id)
    return ex._new_handle(run, d.path, batch_id)


async def _submit(ex: HpcExecutor, runs: Sequence[RunJob]) -> list[RunHandle | BaseException]:
    """Write every task's directory and data files, then the group's script, then submit it once."""
    t = ex.transport
    sched = ex.scheduler
    results: list[RunHandle | BaseException | None] = [None] * len(runs)
    ready: list[tuple[int, RunJob, L.AttemptDir]] = []  # (position in runs, the cluster's run, its dir)
    first_req: BatchRequest | None = None
    inherit: Sequence[str] | None = None
    for i, run in enumerate(runs):
        try:
            run = ex.paths.run(run)
            w = await prepare_wrapped(ex, run)
            d = w.dir
            req = _request(ex, run, d.path, d.log("stdout"), d.log("stderr"), w.argv, w.env)
            for file_name, data in sched.launch_files(req).items():
                await t.write_file(d.file(file_name), data, 0o600)
        except Exception as e:
            results[i] = e
            continue
        if first_req is None:
            first_req = req
            inherit = w.inherit if isinstance(t, LocalTransport) else None
        ready.append((i, run, d))
    if first_req is not None:
        first_dir = ex.files().dir(ready[0][1].job_id, ready[0][1].attempt)
        group = _request(
            ex,
            ready[0][1],
            first_dir.path,
            first_dir.file("array.out"),
            first_dir.file("array.err"),
            first_req.argv,
            first_req.env,
        )
        base = sched.array_first_id
        tasks = {base + n: d.path for n, (_, _, d) in enumerate(ready)}
        parallelism = ready[0][1].array_parallelism
        array_id = ready[0][1].array_id or ""
        # another native job of this array still runs (a retried task, a chunk dispatched in two
        # rounds): this one waits for it, so never more than ``parallelism`` of the array run
        before = ex.natives.running_job_of(array_id)
        try:
            directives = sched.with_array(sched.directives(group), base, base + len(ready) - 1, parallelism)
            if before is not None:
                directives += sched.after_directives(before)
            script = sched.build_array_script(group, directives, tasks)
        except StartRefused as e:
            return [r if r is not None else e for r in results]
        script_path = first_dir.file(ARRAY_SCRIPT)
        await t.write_file(script_path, script.encode(), 0o755)
        for n, (_, _run, d) in enumerate(ready):
            marker = f"{group.batch_name}\n{base + n}\n".encode()
            await t.write_file(d.own(SUBMITTING), marker)
        ex._count("submit")
        try:
            job = await sched.submit(t, script_path, inherit)
        except SchedulerUnavailable as e:
            deferred = StartDeferred(f"waiting for {sched.name}: {e}")
            return [r if r is not None else deferred for r in results]
        except SchedulerError as e:
            refused = StartRefused(f"the batch system refused the array: {e}")
            return [r if r is not None else refused for r in results]
        log.info(
            "submitted %d tasks of array %s as %s array job %s%s%s",
            len(ready),
            array_id,
            sched.name,
            job,
            f" (at most {parallelism} at once)" if parallelism else "",
            f", after {before}" if before is not None else "",
        )
        for n, (i, run, d) in enumerate(ready):
            batch_id = sched.task_id(job, base + n)
            await t.write_file(d.own(BATCH_ID), f"{batch_id}\n".encode())
            results[i] = ex._new_handle(run, d.path, batch_id)
    return [r if r is not None else RuntimeError("not started") for r in results]


def _request(
    ex: HpcExecutor,
    run: RunJob,
    job_dir: str,
    stdout: str,
    stderr: str,
    argv: Sequence[str],
    env: Mapping[str, str],
) -> BatchRequest:
    walltime = run.spec.resources.walltime
    return BatchRequest(
        job_id=run.job_id,
        attempt=run.attempt,
        spec=run.spec,
        job_dir=job_dir,
        stdout=stdout,
        stderr=stderr,
        argv=argv,
        env=env,
        default_queue=ex.hpc.queue,
        default_parallel_environment=ex.hpc.parallel_environment,
        walltime=float(walltime) if walltime is not None else None,
    )
