"""``HpcExecutor``: jobs as batch jobs of one cluster, through a scheduler adapter and a transport.

Each attempt's directory on shared storage is written by :mod:`jobwire.execution.attempt` as for a
detached process (run.json, wrapper, the job's files, inputs, environment); this adds the batch script,
the batch id and the batch lifecycle (submit once, find again, kill, hold). A poll is one probe of all
directories and the :class:`~.poller.QueuePoller`'s one list command (and, for jobs that left the
queue, one accounting command), never asked more often than ``poll_interval``.

The attempt is laid out as every backend's (:mod:`jobwire.execution.attempt.layout`): the executor's
bookkeeping (run.json, batch id, submit marker, signal, state) in a tree of its own,
``<root>/.executor/jobs/<job>/<attempt>``; what the batch job writes (the wrapper's pid and exit code,
the logs) in the job's directory beside its script, because the batch system, not the executor, runs
the wrapper. Attempts an older executor left with their bookkeeping in the job's directory are moved
before they are adopted (:mod:`jobwire.execution.attempt.upgrade`).

Run-as (``JOBWIRE_EXECUTOR_RUN_AS`` ``owner`` or ``fixed:<user>``, issue 12 item 1): the batch job is
submitted as the owner's account through ``sudo -n -u <account> -- sbatch --export=NONE`` (``qsub``),
so the batch system runs all of it as that account, as Slurm and HTCondor run a job as its submitter.
The job's directory is then the account's, 0700, and the executor's tree is one the account cannot
enter. The exit code is the batch system's accounting record of the batch script's status; the
``exit_code`` file the job's account could rewrite is only compared with it. Queries and cancels run
as the executor (root: an administrator of the batch system).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import posixpath
import pwd
import shutil
import signal
import time
from collections.abc import Sequence
from typing import ClassVar

import msgspec

from jobwire.contracts.v1 import NodeCapacity, RunJob
from jobwire.contracts.v1 import subjects as sj
from jobwire.execution.accounts import Account
from jobwire.execution.attempt import AttemptFiles
from jobwire.execution.attempt import layout as L
from jobwire.execution.attempt.env import inherited
from jobwire.execution.attempt.upgrade import move_bookkeeping
from jobwire.execution.executor import (
    STREAMS,
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
from jobwire.execution.hpc.base import SchedulerError, SchedulerUnavailable, SubmitAsRefused, sudo_argv
from jobwire.execution.local import check_traversable
from jobwire.execution.pathmap import PathMap
from jobwire.execution.runner import began_at, prepare_wrapped
from jobwire.execution.settings import ExecutorSettings
from jobwire.execution.transport import DirProbe, Transport, TransportError
from jobwire.execution.transport.local import LocalTransport
from jobwire.execution.transport.ssh import SshTransport
from jobwire.execution.transport.sshconn import SshHost

from . import native
from .native_control import NativeControl
from .poller import QueuePoller
from .programs import catalog_of
from .schedulers.slurm_gang import GANG_REASON
from .settings import HpcSettings, hpc_settings

log = logging.getLogger(__name__)
BATCH_SCRIPT = "batch.sh"
BATCH_ID = "batch_id"
#: written just before the submit: found without a batch id, the submit may have reached the batch
#: system before a crash, so it is asked (one list by name) before submitting again
SUBMITTING = "submitting"
VANISHED = "the batch job left the queue and accounting has no record of it"
NO_ACCOUNTING = (
    "the batch job left the queue and accounting has no record of its exit code (a job's own exit_code "
    "file is not trusted when it runs as its owner's account)"
)
#: the executor's bookkeeping: read only from its own directory, never from the job's (run.json last:
#: what :func:`~jobwire.execution.attempt.upgrade.move_bookkeeping` moves in this order)
OWN_ORDER = (BATCH_ID, SUBMITTING, L.SIGNAL, L.STATE, L.REPORTED, L.RUN_JSON)
OWN_FILES = frozenset(OWN_ORDER)
CANCELLED_WAITING = "cancelled in the batch system's queue before it ran"


class HpcExecutor(Executor):
    """One cluster's batch jobs; capacity is how many jobs jobwire keeps in flight there."""

    backend = "hpc"
    run_as_modes: ClassVar[frozenset[str]] = frozenset({"self", "fixed", "owner"})

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
        #: ``sudo`` on the login node, for submitting as the job's account (None under ``self``)
        self.sudo: str | None = None
        if not self.run_as.is_self:
            self.sudo = check_run_as_here(settings, transport, root, scheduler)
        self.attempts = AttemptFiles(transport, root, started_by_batch=True)
        self.scheduler = scheduler
        self.hpc = hpc
        self.paths = PathMap(hpc.path_map)
        #: scheduler commands run, by kind (list, accounting, submit, kill): what the tests count
        self.calls: dict[str, int] = {}
        #: whether the adapter's :meth:`BatchSystem.prepare` went through (slurmrestd may be down)
        self._prepared = False
        self.poller = QueuePoller(scheduler, transport, hpc, self._count, self._ready)
        #: native array jobs followed here, and their tasks' kills, holds and releases gathered
        self.natives = NativeControl(self)

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
        await self.natives.settled()  # kills and holds asked before the stop still go out
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
            gang_launch=self.scheduler.gang_launch,
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
        account = await self.run_as.ensure(run.owner)
        d = self.files().for_run(run)
        t = self.transport
        name = BatchRequest.name_of(run.job_id, run.attempt)
        probe = await self._probe(d, read=[SUBMITTING, BATCH_ID], stat=["stdout", "stderr", L.EXIT_CODE])
        if BATCH_ID in probe.files:
            return await self._handle(probe)
        if SUBMITTING in probe.files:
            found = await self._submitted_before(probe, name)
            if found is not None:
                await t.write_file(d.own(BATCH_ID), f"{found}\n".encode())
                log.info(
                    "%s attempt %d was submitted before a crash as job %s", run.job_id, run.attempt, found
                )
                return self._new_handle(run, d.path, found)
        run = self.paths.run(run)  # the cluster's paths for shared storage, before anything is written
        w = await prepare_wrapped(self, run, account)
        env = w.env
        if account is not None:
            # submitted with no environment of its own (sudo resets it, sbatch --export=NONE): the
            # allowlisted variables travel in batch.args with the job's, as a local job gets them
            env = {**inherited(os.environ, w.inherit), **w.env}
        walltime = run.spec.resources.walltime
        req = BatchRequest(
            job_id=run.job_id,
            attempt=run.attempt,
            spec=run.spec,
            job_dir=d.path,
            stdout=d.log("stdout"),
            stderr=d.log("stderr"),
            argv=w.argv,
            env=env,
            default_queue=self.hpc.queue,
            default_parallel_environment=self.hpc.parallel_environment,
            walltime=float(walltime) if walltime is not None else None,
            ranks=run.spec.resources.nodes if gang_here(self.scheduler, run) else 0,
        )
        directives = self.scheduler.directives(req)
        script = self.scheduler.build_script(req, directives)
        # the job's command, environment and setup are data beside the script, never in it (issue 12)
        for file_name, data in self.scheduler.launch_files(req).items():
            if "/" in file_name:  # a gang rank's own directory (``rank1/batch.args``)
                await t.mkdir(posixpath.dirname(d.file(file_name)))
            await t.write_file(d.file(file_name), data, 0o600)
        await t.write_file(d.file(BATCH_SCRIPT), script.encode(), 0o755)
        for suffix, data in self.scheduler.submit_files(req, directives, script).items():
            await t.write_file(d.file(BATCH_SCRIPT) + suffix, data, 0o600)
        if account is not None:  # what the batch job reads as its account: the script and its data
            await t.give_to(d.path, account.name, str(account.gid))
        await t.write_file(d.own(SUBMITTING), f"{name}\n".encode())
        self._count("submit")
        as_user = self._as_user(account)
        try:
            # sbatch and bsub hand the submitter's environment to the job: here it is the executor's
            # own (its secrets), so only the allowlist goes; over SSH it is the login account's.
            inherit = w.inherit if isinstance(t, LocalTransport) else None
            batch_id = await self.scheduler.submit(t, d.file(BATCH_SCRIPT), inherit, as_user)
        except SubmitAsRefused as e:
            assert account is not None
            raise StartRefused(self._sudo_refusal(account, e)) from e
        except SchedulerUnavailable as e:
            raise StartDeferred(f"waiting for {self.scheduler.name}: {e}") from e
        except SchedulerError as e:
            raise StartRefused(f"the batch system refused the job: {e}") from e
        await t.write_file(d.own(BATCH_ID), f"{batch_id}\n".encode())
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

    def _as_user(self, account: Account | None) -> list[str]:
        """The sudo prefix that submits as ``account`` (none for the executor's own), keeping only the
        batch client's configuration (``SLURM_CONF``, ``SGE_ROOT``) of the executor's environment."""
        if account is None or self.sudo is None:
            return []
        return sudo_argv(self.sudo, account.name, self._keep())

    def _keep(self) -> list[str]:
        """The batch client's configuration variables sudo must keep (``SLURM_CONF``, ``SGE_ROOT``)."""
        return sorted({*self.scheduler.env, *inherited(os.environ, self.scheduler.client_env)})

    def _sudo_refusal(self, account: Account, e: SubmitAsRefused) -> str:
        """Why the job cannot be submitted as ``account``, with the sudoers rule that would allow it."""
        me = pwd.getpwuid(os.geteuid()).pw_name
        submit = self.scheduler.build_submit("x")[0]
        path = shutil.which(submit) or submit
        # SETENV: the batch client's configuration (SLURM_CONF) is kept with --preserve-env
        tags = "NOPASSWD:SETENV:" if self._keep() else "NOPASSWD:"
        return (
            f"cannot submit as the account {account.name!r}: {e}; the executor's account needs a sudoers "
            f"rule such as '{me} ALL=({account.name}) {tags} {path}' (see executor-hpc's README)"
        )

    async def _probe(self, d: L.AttemptDir, read: Sequence[str] = (), stat: Sequence[str] = ()) -> DirProbe:
        """One attempt's files in one probe: the executor's own (batch id, signal) from its tree and the
        batch job's (logs, exit_code, pid) from the job's directory."""
        [probe] = await self._probes([d], read, stat)
        return probe

    async def _probes(
        self, dirs: Sequence[L.AttemptDir], read: Sequence[str] = (), stat: Sequence[str] = ()
    ) -> list[DirProbe]:
        # both directories of every attempt in one call: one command over an SSH transport
        both = await self.transport.probe(
            [*(d.private for d in dirs), *(d.path for d in dirs)], read=read, stat=stat
        )
        own, job = both[: len(dirs)], both[len(dirs) :]
        return [
            DirProbe(
                o.path,
                o.exists and j.exists,
                # each file from where it belongs: bookkeeping from the executor's tree only
                {**{k: v for k, v in j.files.items() if k not in OWN_FILES}, **o.files},
                {**{k: v for k, v in j.stats.items() if k not in OWN_FILES}, **o.stats},
            )
            for o, j in zip(own, job, strict=True)
        ]

    def _new_handle(self, run: RunJob, path: str, batch_id: str) -> RunHandle:
        details = {"batch_id": batch_id, "dir": path, "scheduler": self.scheduler.name}
        self.natives.follow(batch_id, run.array_id)
        return RunHandle(run, path, details, running=False)

    # --- finding attempts again -----------------------------------------------------------------

    async def existing(self, job_id: str, attempt: int, rank: int = 0) -> Existing | None:
        d = self.files().dir(job_id, attempt, rank)
        [probe] = await self.transport.probe([d.private], read=[BATCH_ID, L.REPORTED])
        if L.REPORTED in probe.files:
            return Existing(None, reported=True)
        if BATCH_ID not in probe.files:
            return None
        return Existing(await self._handle(probe), reported=False)

    async def adopt(self) -> list[RunHandle]:
        """The batch jobs this node submitted and has not reported; first, those an older executor
        laid out with its bookkeeping in the job's directory are moved to where it is kept now (the
        service adopts before it takes any RunJob, so a redelivered one finds them there too)."""
        if self.run_as.is_self:
            await move_bookkeeping(self.transport, self.root, OWN_ORDER)
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
        """The attempt whose executor's own directory ``probe`` read."""
        run = await self.files().read_run(probe.path)
        d = self.files().for_run(run)
        return self._new_handle(run, d.path, probe.files[BATCH_ID].decode().strip())

    # --- polling --------------------------------------------------------------------------------

    def log_streams(self, run: RunJob) -> dict[str, str]:
        """A gang launched inside the batch job has every rank's logs here: rank R's wrapper writes
        ``rankR/stdout``, published as ``stdout-rankR`` (``?rank=R``) as a Docker or SSH rank's is;
        rank 0's are the job's own."""
        ranks = run.spec.resources.nodes if gang_here(self.scheduler, run) else 1
        return {L.rank_log(s, rank): sj.rank_stream(s, rank) for rank in range(ranks) for s in STREAMS}

    async def _rank_log_sizes(
        self, dirs: Sequence[L.AttemptDir], handles: Sequence[RunHandle]
    ) -> list[dict[str, int]]:
        """The sizes of the logs of each gang's ranks > 0 (``rankR/stdout``), every rank directory of
        every gang in one probe; none asked while no gang runs here."""
        where = [
            (i, rank, posixpath.join(d.logs, L.rank_subdir(rank)))
            for i, (d, h) in enumerate(zip(dirs, handles, strict=True))
            if gang_here(self.scheduler, h.run)
            for rank in range(1, h.run.spec.resources.nodes)
        ]
        out: list[dict[str, int]] = [{} for _ in handles]
        if not where:
            return out
        probes = await self.transport.probe([path for _, _, path in where], stat=STREAMS)
        for (i, rank, _), probe in zip(where, probes, strict=True):
            for s in STREAMS:
                out[i][L.rank_log(s, rank)] = probe.stats[s].size if s in probe.stats else 0
        return out

    async def poll(self, handles: Sequence[RunHandle]) -> dict[RunKey, RunStatus]:
        dirs = [self.files().of(h) for h in handles]
        probes = await self._probes(
            dirs,
            read=[L.EXIT_CODE, L.SIGNAL, GANG_REASON],
            stat=["stdout", "stderr", L.PROGRESS, L.EXIT_CODE, BATCH_ID, L.PID],
        )
        ranks = await self._rank_log_sizes(dirs, handles)
        out = await self._statuses(handles, probes)
        for h, sizes in zip(handles, ranks, strict=True):
            if sizes:
                st = out[h.key]
                out[h.key] = dataclasses.replace(st, log_sizes={**st.log_sizes, **sizes})
        return out

    async def _statuses(
        self, handles: Sequence[RunHandle], probes: Sequence[DirProbe]
    ) -> dict[RunKey, RunStatus]:
        """Each run's status from its directory's probe and the batch system's one view of the queue."""
        ids = [str(h.details["batch_id"]) for h in handles]

        def since() -> float:
            # submitted no earlier than its batch id file was written (accounting is asked from then)
            return min((p.stats[BATCH_ID].mtime for p in probes if BATCH_ID in p.stats), default=time.time())

        # the wrapper's end marker: when to ask accounting, never the end itself (poller.py)
        ending = {i for i, p in zip(ids, probes, strict=True) if L.EXIT_CODE in p.stats}
        view = await self.poller.view(ids, since, ending)
        out: dict[RunKey, RunStatus] = {}
        now = time.monotonic()
        left = set(view.left)
        for h, i, probe in zip(handles, ids, probes, strict=True):
            if i not in left:
                entry = None if view.queue is None else view.queue[i]
                out[h.key] = _waiting(probe, entry, self.scheduler.name)
                continue
            out[h.key] = self._ended(probe, view.accounting.get(i), waited=self.poller.gone_for(i, now))
            if out[h.key].ended:
                self.poller.forget(i)
                self.natives.ended(i)
        return out

    def _ended(self, probe: DirProbe, acct: Accounting | None, waited: float) -> RunStatus:
        """A job that left the queue: ended once accounting has it (or the wait for it is over).

        Under run-as the ``exit_code`` file is the job's account's to rewrite: the code is the
        accounting record's, and the file is only compared with it."""
        code = _int(probe.files.get(L.EXIT_CODE))
        gang_why = probe.files.get(GANG_REASON)  # which rank of a gang failed, as its script saw it
        why = gang_why.decode("utf-8", "replace").strip() or None if gang_why else None
        sizes = _sizes(probe)
        mark = _mark(probe)
        ended_at = probe.stats[L.EXIT_CODE].mtime if L.EXIT_CODE in probe.stats else None
        began = began_at(probe)
        if not self.run_as.is_self:
            if acct is not None and acct.final and code is not None and code != acct.exit_code:
                log.warning(
                    "%s: the job's exit_code file says %s, accounting %s: accounting's is reported",
                    probe.path,
                    code,
                    acct.exit_code,
                )
            code, ended_at = None, None
        if acct is not None and acct.final:
            return RunStatus(
                True,
                exit_code=code if code is not None else acct.exit_code,
                reason=why or acct.reason,
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
        if code is None and not self.run_as.is_self:
            return RunStatus(True, reason=NO_ACCOUNTING, log_sizes=sizes, progress_mark=mark)
        if code is not None:
            return RunStatus(
                True,
                exit_code=code,
                reason=why,
                ended_at=ended_at,
                started_at=began,
                log_sizes=sizes,
                progress_mark=mark,
            )
        return RunStatus(True, reason=VANISHED, log_sizes=sizes, progress_mark=mark)

    # --- control --------------------------------------------------------------------------------

    async def signal(self, handle: RunHandle, sig: signal.Signals) -> None:
        """TERM and KILL both cancel the batch job: the scheduler signals and reaps it itself."""
        await self.transport.write_file(self.files().of(handle).own(L.SIGNAL), f"{int(sig)}\n".encode())
        batch_id = str(handle.details["batch_id"])
        job = self.scheduler.task_job(batch_id)
        if job is not None:
            await self.natives.kill(job, batch_id)  # a native task: with its siblings' kills
        else:
            self._count("kill")
            await self.scheduler.kill(self.transport, batch_id)
        self.poller.refresh_soon()  # see the cancel on the next tick

    async def hold(self, handle: RunHandle, release: bool) -> None:
        """``scontrol hold``/``qhold`` (or release); a job the batch system already runs is refused. A
        native array task's is gathered with its siblings' (one command when they are all its native
        job's waiting tasks: the array was held) and asked, not waited for (``native_control.py``)."""
        if not self.scheduler.supports_hold:
            raise HoldRefused(f"{self.scheduler.name} mode cannot hold or release batch jobs")
        batch_id = str(handle.details["batch_id"])
        job = self.scheduler.task_job(batch_id)
        if job is not None:
            await self.natives.hold(job, batch_id, release)  # a native task: with its siblings'
            return
        self._count("release" if release else "hold")
        try:
            await self.scheduler.hold(self.transport, batch_id, release)
        except SchedulerError as e:
            raise HoldRefused(str(e)) from e
        self.poller.refresh_soon()  # show the change on the next tick


def check_run_as_here(
    settings: ExecutorSettings, transport: Transport, root: str, scheduler: BatchSystem
) -> str:
    """What run-as needs of this login node; ValueError (refusing the start) with what is missing.
    Returns the path of ``sudo``."""
    mode = f"JOBWIRE_EXECUTOR_RUN_AS={settings.run_as!r}"
    if not scheduler.supports_run_as:
        raise ValueError(f"{mode}: the {scheduler.name} adapter cannot submit as another account")
    if not isinstance(transport, LocalTransport):
        raise ValueError(f"{mode} needs the executor on the login node (JOBWIRE_HPC_TRANSPORT=local)")
    if os.geteuid() != 0:
        raise ValueError(
            f"{mode} needs the executor to run as root (it gives each job's directory to its account)"
        )
    sudo = shutil.which("sudo")
    if sudo is None:
        raise ValueError(f"{mode} submits through sudo -n -u <account>: install sudo on this login node")
    check_traversable(root)
    return sudo


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


def gang_here(scheduler: BatchSystem, run: RunJob) -> bool:
    """Whether the batch job starts the gang's ranks itself (``resources.nodes`` > 1 on SLURM)."""
    return scheduler.gang_launch and run.spec.resources.nodes > 1


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
