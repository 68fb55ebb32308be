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

import asyncio
import logging
import time
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
#: kills of one native job's tasks asked less than this many seconds apart go out together
KILL_WINDOW = 0.3
#: ... for at most this long from the first: an array's cancels reach a loaded executor spread out
KILL_WINDOW_MAX = 2.0
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
        before = ex.kills.running_job_of(array_id)
        try:
            directives = sched.directives(group) + sched.array_directives(
                base, base + len(ready) - 1, parallelism
            )
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


class NativeKills:
    """Kills of a native array's tasks, gathered for a moment: when every task of the native job this
    executor still follows is being cancelled (the array was cancelled), ONE kill of the native job
    (``scancel 123``, ``qdel 123``) replaces a command per task; otherwise each task is killed alone
    (``scancel 123_4``, ``qdel 123 -t 5``).

    A kill is asked and not waited for: the work consumer hands the next cancel in only once the
    one before is handled, so waiting out the gathering window there would send an array's cancels
    one window apart, each alone. A kill that fails is logged; the run loop's KILL after the stop's
    grace asks again."""

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
        self._asked: dict[str, set[str]] = {}
        self._sending: set[str] = set()
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
        self._asked.setdefault(job, set()).add(batch_id)
        if job not in self._sending:
            self._sending.add(job)
            task = asyncio.create_task(self._send(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def settled(self) -> None:
        """Until every kill asked so far has been sent (for a clean stop and for tests)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _send(self, job: str) -> None:
        deadline = time.monotonic() + KILL_WINDOW_MAX
        seen = 0
        while len(self._asked.get(job, ())) > seen and time.monotonic() < deadline:
            seen = len(self._asked.get(job, ()))
            await asyncio.sleep(KILL_WINDOW)
        asked = self._asked.pop(job, set())
        self._sending.discard(job)
        ex = self.ex
        live = self.live.get(job, set())
        # tasks killed alone earlier still count as followed until a poll sees them end
        rest = live - self.killed.get(job, set())
        try:
            if rest and rest <= asked:
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
        except Exception as e:
            log.warning(
                "killing tasks of native array job %s failed (asked again after the grace): %s",
                job,
                e,
            )
