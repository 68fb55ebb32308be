"""``HpcExecutor``: jobs as batch jobs of one cluster, through a scheduler adapter and a transport.

Each attempt's directory on shared storage is written by :mod:`jobwire.execution.attempt` as for a
detached process (run.json, wrapper, the job's files, inputs, environment); this adds the batch script,
the batch id and the batch lifecycle (submit once, find again, kill, hold). A poll is one probe of all
directories and the :class:`~.poller.QueuePoller`'s one list command (and, for jobs that left the
queue, one accounting command), never asked more often than ``poll_interval``.
"""

from __future__ import annotations

import logging
import posixpath
import signal
import time
from collections.abc import Sequence

import msgspec

from jobwire.contracts.v1 import NodeCapacity, RunJob
from jobwire.execution.attempt import AttemptFiles
from jobwire.execution.attempt import layout as L
from jobwire.execution.executor import (
    Executor,
    Existing,
    HoldRefused,
    RunHandle,
    RunKey,
    RunStatus,
    StartDeferred,
    StartRefused,
)
from jobwire.execution.hpc import Accounting, BatchRequest, BatchSystem, Phase, QueueEntry, load_scheduler
from jobwire.execution.hpc.base import SchedulerError, SchedulerUnavailable
from jobwire.execution.pathmap import PathMap
from jobwire.execution.runner import began_at, prepare_wrapped
from jobwire.execution.settings import ExecutorSettings
from jobwire.execution.transport import DirProbe, Transport, TransportError
from jobwire.execution.transport.local import LocalTransport
from jobwire.execution.transport.ssh import SshTransport
from jobwire.execution.transport.sshconn import SshHost

from . import native
from .poller import QueuePoller
from .programs import catalog_of
from .settings import HpcSettings, hpc_settings

log = logging.getLogger(__name__)
BATCH_SCRIPT = "batch.sh"
BATCH_ID = "batch_id"
#: written just before the submit: found without a batch id, the submit may have reached the batch
#: system before a crash, so it is asked (one list by name) before submitting again
SUBMITTING = "submitting"
VANISHED = "the batch job left the queue and accounting has no record of it"
CANCELLED_WAITING = "cancelled in the batch system's queue before it ran"


class HpcExecutor(Executor):
    """One cluster's batch jobs; capacity is how many jobs jobwire keeps in flight there."""

    backend = "hpc"

    def __init__(
        self,
        settings: ExecutorSettings,
        transport: Transport,
        root: str,
        scheduler: BatchSystem,
        hpc: HpcSettings,
    ) -> None:
        super().__init__(settings)
        if not posixpath.isabs(root):
            raise ValueError(f"the batch executor's root must be an absolute path, not {root!r}")
        self.transport = transport
        self.root = root
        self.attempts = AttemptFiles(transport, root)
        self.scheduler = scheduler
        self.hpc = hpc
        self.paths = PathMap(hpc.path_map)
        #: scheduler commands run, by kind (list, accounting, submit, kill): what the tests count
        self.calls: dict[str, int] = {}
        #: whether the adapter's :meth:`BatchSystem.prepare` went through (slurmrestd may be down)
        self._prepared = False
        self.poller = QueuePoller(scheduler, transport, hpc, self._count, self._ready)
        self.kills = native.NativeKills(self)

    @classmethod
    def from_settings(cls, settings: ExecutorSettings) -> HpcExecutor:
        hpc = hpc_settings()
        scheduler = load_scheduler(hpc.scheduler)(
            bin_dir=hpc.bin_dir, env=hpc.command_env, options=hpc.scheduler_options()
        )
        settings.labels.setdefault("cluster", hpc.cluster or settings.node)
        root = posixpath.abspath(settings.root_dir())
        executor = cls(settings, make_transport(hpc), root, scheduler, hpc)
        executor.catalog = catalog_of(hpc, executor.transport, settings.labels["cluster"])
        return executor

    async def open(self) -> None:
        """Prepare the adapter; a batch system service that is down now is prepared again later."""
        try:
            await self._ready()
        except StartDeferred as e:
            log.warning("%s; starting anyway, jobs wait until it answers", e)

    async def _ready(self) -> None:
        """The adapter's one-time preparation (version detection), StartDeferred while it cannot."""
        if self._prepared:
            return
        try:
            await self.scheduler.prepare(self.transport)
        except SchedulerUnavailable as e:
            raise StartDeferred(f"waiting for {self.scheduler.name}: {e}") from e
        self._prepared = True

    async def close(self) -> None:
        await self.transport.close()

    def capacity(self) -> NodeCapacity:
        s = self.settings
        need = None if self.hpc.parallel_environment else self.scheduler.multislot_option
        return NodeCapacity(
            slots=s.slots or 64,
            cpus=s.cpus or 4096.0,
            gpus=s.gpus or 0,
            single_slot_unless=need,
            native_arrays=self.native_arrays,
        )

    @property
    def native_arrays(self) -> bool:
        """Whether an array's tasks dispatched together become one native array job here. Only while
        jobs run as the executor's own account: one native job has one submitter, and a job that runs
        as its owner's account is submitted through the single-job path, which maps it."""
        return (
            self.hpc.native_arrays
            and self.scheduler.array_task_variable is not None
            and self.run_as.mode == "self"
        )

    def describe(self) -> dict[str, str]:
        return {"root": self.root, "transport": self.transport.name, "scheduler": self.scheduler.name}

    def can_hold(self) -> bool:
        return self.scheduler.supports_hold

    def option_types(self) -> tuple[type[msgspec.Struct] | None, str | None]:
        return self.scheduler.options_type, self.scheduler.options_field

    def _count(self, kind: str) -> None:
        self.calls[kind] = self.calls.get(kind, 0) + 1

    # --- start ----------------------------------------------------------------------------------

    async def start(self, run: RunJob) -> RunHandle:
        await self._ready()
        d = self.files().for_run(run)
        t = self.transport
        name = BatchRequest.name_of(run.job_id, run.attempt)
        [probe] = await t.probe([d.path], read=[SUBMITTING, BATCH_ID], stat=["stdout", "stderr", L.EXIT_CODE])
        if BATCH_ID in probe.files:
            return await self._handle(probe)
        if SUBMITTING in probe.files:
            found = await self._submitted_before(probe, name)
            if found is not None:
                await t.write_file(d.file(BATCH_ID), f"{found}\n".encode())
                log.info(
                    "%s attempt %d was submitted before a crash as job %s", run.job_id, run.attempt, found
                )
                return self._new_handle(run, d.path, found)
        run = self.paths.run(run)  # the cluster's paths for shared storage, before anything is written
        w = await prepare_wrapped(self, run)
        walltime = run.spec.resources.walltime
        req = BatchRequest(
            job_id=run.job_id,
            attempt=run.attempt,
            spec=run.spec,
            job_dir=d.path,
            stdout=d.log("stdout"),
            stderr=d.log("stderr"),
            argv=w.argv,
            env=w.env,
            default_queue=self.hpc.queue,
            default_parallel_environment=self.hpc.parallel_environment,
            walltime=float(walltime) if walltime is not None else None,
        )
        directives = self.scheduler.directives(req)
        script = self.scheduler.build_script(req, directives)
        # the job's command, environment and setup are data beside the script, never in it (issue 12)
        for file_name, data in self.scheduler.launch_files(req).items():
            await t.write_file(d.file(file_name), data, 0o600)
        await t.write_file(d.file(BATCH_SCRIPT), script.encode(), 0o755)
        for suffix, data in self.scheduler.submit_files(req, directives, script).items():
            await t.write_file(d.file(BATCH_SCRIPT) + suffix, data, 0o600)
        await t.write_file(d.file(SUBMITTING), f"{name}\n".encode())
        self._count("submit")
        try:
            # sbatch and bsub hand the submitter's environment to the job: here it is the executor's
            # own (its secrets), so only the allowlist goes; over SSH it is the login account's.
            inherit = w.inherit if isinstance(t, LocalTransport) else None
            batch_id = await self.scheduler.submit(t, d.file(BATCH_SCRIPT), inherit)
        except SchedulerUnavailable as e:
            raise StartDeferred(f"waiting for {self.scheduler.name}: {e}") from e
        except SchedulerError as e:
            raise StartRefused(f"the batch system refused the job: {e}") from e
        await t.write_file(d.file(BATCH_ID), f"{batch_id}\n".encode())
        log.info(
            "submitted %s attempt %d as %s job %s", run.job_id, run.attempt, self.scheduler.name, batch_id
        )
        return self._new_handle(run, d.path, batch_id)

    async def start_array(self, runs: Sequence[RunJob]) -> list[RunHandle | BaseException]:
        """An array's tasks dispatched together: one native array job (``native.py``)."""
        if not self.native_arrays:
            return await super().start_array(runs)
        return await native.start_array(self, runs)

    async def _submitted_before(self, probe: DirProbe, name: str) -> str | None:
        """The batch id of an earlier submit of this attempt, or None when it never reached the queue.

        Refuses when the batch job evidently ran (its output files exist) but left the queue: its id
        is unknown and submitting again would run the job twice.
        """
        self._count("find")
        try:
            ids = await self.scheduler.find(self.transport, name)
        except SchedulerUnavailable as e:
            raise StartDeferred(f"waiting for {self.scheduler.name}: {e}") from e
        except (SchedulerError, TransportError) as e:
            raise RuntimeError(f"cannot tell whether {name} was submitted before a crash: {e}") from e
        if len(ids) > 1:
            log.warning("batch jobs %s all carry the name %s; following the first", ids, name)
        if ids:
            return sorted(ids, key=lambda i: (len(i), i))[0]
        if any(f in probe.stats for f in ("stdout", "stderr", L.EXIT_CODE)):
            raise StartRefused(
                f"the batch job {name} was submitted before an executor crash and has already left the "
                "queue; it is not submitted again"
            )
        return None

    def _new_handle(self, run: RunJob, path: str, batch_id: str) -> RunHandle:
        details = {"batch_id": batch_id, "dir": path, "scheduler": self.scheduler.name}
        self.kills.follow(batch_id, run.array_id)
        return RunHandle(run, path, details, running=False)

    # --- finding attempts again -----------------------------------------------------------------

    async def existing(self, job_id: str, attempt: int, rank: int = 0) -> Existing | None:
        d = self.files().dir(job_id, attempt, rank)
        [probe] = await self.transport.probe([d.path], read=[BATCH_ID, L.REPORTED])
        if L.REPORTED in probe.files:
            return Existing(None, reported=True)
        if BATCH_ID not in probe.files:
            return None
        return Existing(await self._handle(probe), reported=False)

    async def adopt(self) -> list[RunHandle]:
        dirs = await self.files().listed()
        handles = []
        for probe in await self.transport.probe(dirs, read=[BATCH_ID, L.REPORTED]):
            if L.REPORTED in probe.files or BATCH_ID not in probe.files:
                continue
            handle = await self._handle(probe)
            if handle.run.node == self.settings.node:
                handles.append(handle)
        return handles

    async def _handle(self, probe: DirProbe) -> RunHandle:
        run = await self.files().read_run(probe.path)
        return self._new_handle(run, probe.path, probe.files[BATCH_ID].decode().strip())

    # --- polling --------------------------------------------------------------------------------

    async def poll(self, handles: Sequence[RunHandle]) -> dict[RunKey, RunStatus]:
        probes = await self.transport.probe(
            [h.ref for h in handles],
            read=[L.EXIT_CODE, L.SIGNAL],
            stat=["stdout", "stderr", L.PROGRESS, L.EXIT_CODE, BATCH_ID, L.PID],
        )
        ids = [str(h.details["batch_id"]) for h in handles]

        def since() -> float:
            # submitted no earlier than its batch id file was written (accounting is asked from then)
            return min((p.stats[BATCH_ID].mtime for p in probes if BATCH_ID in p.stats), default=time.time())

        view = await self.poller.view(ids, since)
        out: dict[RunKey, RunStatus] = {}
        if view.queue is None:
            for h, probe in zip(handles, probes, strict=True):
                out[h.key] = _waiting(probe, None)
            return out
        now = time.monotonic()
        for h, i, probe in zip(handles, ids, probes, strict=True):
            if i not in view.left:
                out[h.key] = _waiting(probe, view.queue[i], self.scheduler.name)
                continue
            out[h.key] = self._ended(probe, view.accounting.get(i), waited=self.poller.gone_for(i, now))
            if out[h.key].ended:
                self.poller.forget(i)
                self.kills.ended(i)
        return out

    def _ended(self, probe: DirProbe, acct: Accounting | None, waited: float) -> RunStatus:
        """A job that left the queue: ended once accounting has it (or the wait for it is over)."""
        code = _int(probe.files.get(L.EXIT_CODE))
        sizes = _sizes(probe)
        mark = _mark(probe)
        ended_at = probe.stats[L.EXIT_CODE].mtime if L.EXIT_CODE in probe.stats else None
        began = began_at(probe)
        if acct is not None and acct.final:
            return RunStatus(
                True,
                exit_code=code if code is not None else acct.exit_code,
                reason=acct.reason,
                ended_at=ended_at,
                started_at=began,
                log_sizes=sizes,
                progress_mark=mark,
                outcome=acct.outcome,
                usage=acct.usage,
            )
        if began is None and L.SIGNAL in probe.files and code is None:
            # cancelled while it waited: it never ran, and SGE keeps no accounting of such a job
            return RunStatus(True, reason=CANCELLED_WAITING, log_sizes=sizes, progress_mark=mark)
        if waited < self.hpc.accounting_wait:
            return RunStatus(False, log_sizes=sizes, progress_mark=mark, running=None)
        if code is not None:
            return RunStatus(
                True, exit_code=code, ended_at=ended_at, started_at=began, log_sizes=sizes, progress_mark=mark
            )
        return RunStatus(True, reason=VANISHED, log_sizes=sizes, progress_mark=mark)

    # --- control --------------------------------------------------------------------------------

    async def signal(self, handle: RunHandle, sig: signal.Signals) -> None:
        """TERM and KILL both cancel the batch job: the scheduler signals and reaps it itself."""
        await self.transport.write_file(posixpath.join(handle.ref, L.SIGNAL), f"{int(sig)}\n".encode())
        batch_id = str(handle.details["batch_id"])
        job = self.scheduler.task_job(batch_id)
        if job is not None:
            await self.kills.kill(job, batch_id)  # a native task: with its siblings' kills
        else:
            self._count("kill")
            await self.scheduler.kill(self.transport, batch_id)
        self.poller.refresh_soon()  # see the cancel on the next tick

    async def hold(self, handle: RunHandle, release: bool) -> None:
        """``scontrol hold``/``qhold`` (or release); a job the batch system already runs is refused."""
        if not self.scheduler.supports_hold:
            raise HoldRefused(f"{self.scheduler.name} mode cannot hold or release batch jobs")
        self._count("release" if release else "hold")
        try:
            await self.scheduler.hold(self.transport, str(handle.details["batch_id"]), release)
        except SchedulerError as e:
            raise HoldRefused(str(e)) from e
        self.poller.refresh_soon()  # show the change on the next tick


def ssh_host(spec: str, hpc: HpcSettings) -> SshHost:
    """``[user@]host[:port]`` with the configured key and known_hosts (keys only, no passwords)."""
    user, _, rest = spec.rpartition("@")
    host, _, port = rest.partition(":")
    return SshHost(
        host=host,
        port=int(port) if port else 22,
        user=user or None,
        key=hpc.ssh_key,
        known_hosts=hpc.ssh_known_hosts or "~/.ssh/known_hosts",
    )


def make_transport(hpc: HpcSettings) -> Transport:
    """The login node: this machine, or one reached over SSH (optionally through a jump host)."""
    if hpc.transport == "local":
        return LocalTransport()
    if hpc.transport == "ssh":
        if not hpc.ssh_host:
            raise ValueError("JOBWIRE_HPC_SSH_HOST is required with JOBWIRE_HPC_TRANSPORT=ssh")
        jumps = [ssh_host(hpc.ssh_jump, hpc)] if hpc.ssh_jump else []
        return SshTransport(ssh_host(hpc.ssh_host, hpc), jumps)
    raise ValueError(f"unknown transport {hpc.transport!r} (local or ssh)")


def _int(raw: bytes | None) -> int | None:
    try:
        return None if raw is None else int(raw.strip())
    except ValueError:
        return None


def _sizes(probe: DirProbe) -> dict[str, int]:
    return {s: probe.stats[s].size if s in probe.stats else 0 for s in ("stdout", "stderr")}


def _mark(probe: DirProbe) -> tuple[int, float] | None:
    progress = probe.stats.get(L.PROGRESS)
    return (progress.size, progress.mtime) if progress else None


def _waiting(probe: DirProbe, entry: QueueEntry | None, scheduler: str = "") -> RunStatus:
    """A job still in the queue: running, or waiting with the batch system's reason (None: unknown)."""
    sizes, mark = _sizes(probe), _mark(probe)
    if entry is None:
        return RunStatus(False, log_sizes=sizes, progress_mark=mark, running=None)
    if entry.phase is Phase.RUNNING:
        return RunStatus(False, log_sizes=sizes, progress_mark=mark, running=True, started_at=began_at(probe))
    held = entry.phase is Phase.HELD
    why = entry.reason or entry.native
    reason = f"{'held' if held else 'pending'} in {scheduler}: {why}"
    return RunStatus(
        False, log_sizes=sizes, progress_mark=mark, running=False, pending_reason=reason, held=held
    )
