"""Detached processes in attempt directories, over any transport (this machine, an SSH node).

The job runs in its own session under the fixed wrapper, so it outlives the executor; its end is
learned from the ``exit_code`` file the wrapper writes, never from the pid alone (reapers are late).
The executor runs the wrapper, so by the one layout's rule (:mod:`..attempt.layout`) the wrapper's files
(pid, exit_code, logs) are in the executor's own tree, where a job that runs as another account cannot
write.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import posixpath
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from jobwire.contracts.v1 import NodeCapacity, RunJob

from ..accounts import Account
from ..attempt import AttemptFiles, FileToWrite, job_environment
from ..attempt import layout as L
from ..attempt.env import check_allow
from ..executor import STREAMS, Executor, Existing, RunHandle, RunKey, RunStatus, StartRefused, account_of
from ..settings import ExecutorSettings
from ..transport import DirProbe, FileStat, Transport, TransportError
from .command import plan
from .sudo import SudoLaunch, encode_args

log = logging.getLogger(__name__)
#: the wrapper writes its pid a few ms after the launch returns (sooner on an idle machine than under
#: load): look again after 2 ms, then 4, 8, up to 20 ms; a flat 20 ms added up to that to every start
PID_POLL_FIRST = 0.002
PID_POLL_MAX = 0.02
#: wrapper ends heard before their launch read the pid, kept to be matched (a launch that failed
#: leaves one behind; the oldest go first)
EXITED_KEPT = 4096
VANISHED = (
    "the job's processes ended without recording an exit code (killed outside jobwire or the host restarted)"
)


@dataclass(frozen=True)
class Wrapped:
    """An attempt ready to launch under the wrapper: its directory, the argv and the environment."""

    dir: L.AttemptDir
    argv: list[str]
    env: dict[str, str]
    #: what the job may take from the environment it is launched from (settings.env_allow)
    inherit: tuple[str, ...] = ()
    #: the account whose own directory the job's is, reached as it (sudo; None: the executor's)
    account: str | None = None


async def prepare_wrapped(
    executor: Executor,
    run: RunJob,
    account: Account | None = None,
    drop: Sequence[str] = (),
    via: SudoLaunch | None = None,
) -> Wrapped:
    """Write the attempt (directory, run.json, wrapper, the job's files, inputs) and compose what runs
    it: the same for a detached process and a batch job, so neither can miss a file or a variable.

    With ``account`` the job's directory is given to it and ``drop`` (the argv prefix that becomes
    that account, :func:`setpriv_argv`) runs the job; the wrapper itself stays the executor's.
    With ``via`` as well (the executor is not root: :mod:`.sudo`), the account makes its own
    directory and the wrapper starts the job through sudo with its environment from a file there:
    the wrapper and sudo then run with no variable of the job, so none reaches the executor's side.
    A batch job under run-as has neither ``drop`` nor ``via``: the batch system starts the whole of
    it as the account, and nothing runs as the executor with the job's environment.
    """
    if account is not None and via is None and drop:
        check_loader_env(run.spec.env)
    f = executor.files()
    d = f.for_run(run)
    p = plan(run.spec, d, executor.catalog, executor.settings.workdir_roots)
    wrapper = FileToWrite(posixpath.join(d.runner, L.WRAPPER), L.WRAPPER_SCRIPT.encode(), 0o755)
    await f.prepare(run, d, [wrapper, *p.files], p.dirs, executor.inputs, account=account)
    env = {**account_env(account), **job_environment(run, d, await executor.launch_env(run, d))}
    inherit = check_allow(executor.settings.env_allow)
    if account is not None:  # the executor's HOME, USER, LOGNAME are not the job's
        inherit = tuple(x for x in inherit if x not in ACCOUNT_VARS)
    log_max = str(max(0, executor.settings.log_max_bytes))
    if account is not None and via is not None:
        values = {**{k: v for k, v in via.inherited.items() if k not in ACCOUNT_VARS}, **env}
        args = d.file(L.LAUNCH_ARGS)
        await via.transport.write_file(args, encode_args(values, p.argv), 0o600)
        # the wrapper stays out of the job's directory; the launcher enters it as the account
        argv = ["/bin/sh", d.own(L.WRAPPER), d.private, "/", log_max, *via.drop(), args, p.cwd]
        return Wrapped(d, argv, {}, (), account=via.account)
    argv = ["/bin/sh", posixpath.join(d.runner, L.WRAPPER), d.runner, p.cwd, log_max, *drop, *p.argv]
    return Wrapped(d, argv, env, inherit)


#: what a job's account decides in its environment (its spec's env may still set them)
ACCOUNT_VARS = ("HOME", "USER", "LOGNAME")

#: Variables the C library and its dynamic loader act on (glibc's list of those it drops for setuid
#: programs, and its tunables): under run-as the wrapper, ``setsid``, ``setpriv`` and ``mv`` run as the
#: executor (root) with the job's environment, so ``LD_PRELOAD`` of a library the job's owner wrote
#: would run their code as root. Refused there until the job's variables are applied after the drop.
LOADER_VARS = frozenset(
    {
        "GCONV_PATH",
        "GETCONF_DIR",
        "GLIBC_TUNABLES",
        "HOSTALIASES",
        "LOCALDOMAIN",
        "LOCPATH",
        "MALLOC_TRACE",
        "NIS_PATH",
        "NLSPATH",
        "RESOLV_HOST_CONF",
        "RES_OPTIONS",
        "TZDIR",
    }
)


def check_loader_env(env: Mapping[str, str]) -> None:
    """StartRefused when a job running as another account sets a variable the loader acts on."""
    bad = sorted(n for n in env if n.startswith(("LD_", "MALLOC_")) or n in LOADER_VARS)
    if bad:
        raise StartRefused(
            f"env {', '.join(bad)}: the C library's loader variables cannot be set for a job that runs "
            "as its own account on this node (the executor's helpers that start it would read them)"
        )


def account_env(account: Account | None) -> dict[str, str]:
    """HOME, USER and LOGNAME of the account the job runs as (none for the executor's own)."""
    if account is None:
        return {}
    return {"HOME": account.home, "USER": account.name, "LOGNAME": account.name}


def setpriv_argv(account: Account, setpriv: str = "setpriv") -> list[str]:
    """The argv prefix that runs what follows as ``account``, its groups and nothing else (util-linux
    ``setpriv``: real and effective ids, no capabilities left once the uid is not 0)."""
    groups = ",".join(str(g) for g in account.groups) or str(account.gid)
    return [
        setpriv,
        f"--reuid={account.uid}",
        f"--regid={account.gid}",
        f"--groups={groups}",
        "--",
    ]


class ProcessExecutor(Executor):
    """Runs jobs as detached process groups; subclasses supply the transport and the capacity."""

    backend = "process"

    def __init__(self, settings: ExecutorSettings, transport: Transport, root: str) -> None:
        super().__init__(settings)
        if not posixpath.isabs(root):
            raise ValueError(f"the runner's root must be an absolute path, not {root!r}")
        self.transport = transport
        self.attempts = AttemptFiles(transport, root)
        self._alive: dict[RunKey, bool] = {}
        #: called with a run's key when its wrapper is heard to end (:meth:`on_run_change`)
        self._wake: Callable[[RunKey], None] | None = None
        #: the launched wrappers' pids, by run, until heard to end; and ends heard before the launch
        #: had the pid (oldest first, at most ``EXITED_KEPT``)
        self._pid_runs: dict[int, RunKey] = {}
        self._exited: dict[int, None] = {}

    @property
    def root(self) -> str:
        return self.files().root

    @root.setter
    def root(self, value: str) -> None:
        self.files().root = value

    def capacity(self) -> NodeCapacity:
        return NodeCapacity()

    def describe(self) -> dict[str, str]:
        return {"root": self.root, "transport": self.transport.name}

    async def close(self) -> None:
        await self.transport.close()

    def on_run_change(self, wake: Callable[[RunKey], None]) -> None:
        """The wrappers' ends, where the transport sees them (:attr:`Transport.on_exit`), by run."""
        self._wake = wake
        self.transport.on_exit = self._wrapper_exited

    def _wrapper_exited(self, pid: int) -> None:
        key = self._pid_runs.pop(pid, None)
        if key is not None and self._wake is not None:
            self._wake(key)
        elif key is None:  # a no-op job may end before its launch has read its pid
            self._exited[pid] = None
            while len(self._exited) > EXITED_KEPT:
                del self._exited[next(iter(self._exited))]

    def _watch_pid(self, pid: int, key: RunKey) -> None:
        """Tie a launched wrapper's pid to its run, for :meth:`_wrapper_exited`."""
        if self._wake is None:
            return
        if pid in self._exited:
            del self._exited[pid]
            self._wake(key)
        else:
            self._pid_runs[pid] = key

    async def start(self, run: RunJob) -> RunHandle:
        return await self.launch(await prepare_wrapped(self, run), run)

    async def launch(self, w: Wrapped, run: RunJob) -> RunHandle:
        """Start the prepared attempt in its own session and wait for its wrapper's pid."""
        d = w.dir
        fifos = [d.own(name) for name in L.FIFOS] if self.settings.log_max_bytes > 0 else []
        made = bool(fifos) and await self.transport.make_fifos(fifos)
        try:
            await self.transport.spawn_detached(w.argv, env=w.env, inherit=w.inherit)
        except OSError as e:
            if e.errno == errno.E2BIG:
                raise StartRefused("the command line or environment is too long for this node") from e
            raise
        pid, began = await self._wait_for_pid(d)
        self._watch_pid(pid, (run.job_id, run.attempt))
        if made:  # the wrapper and its readers hold both ends by now: the names are done
            await self.transport.remove_files(fifos)
        log.info("started %s attempt %d as process group %d in %s", run.job_id, run.attempt, pid, d.path)
        details: dict[str, object] = {"pid": pid, "dir": d.path}
        if w.account is not None:
            details["account"] = w.account
        return RunHandle(run, d.path, details, started_at=began)

    async def _wait_for_pid(self, d: L.AttemptDir) -> tuple[int, float | None]:
        """The wrapper's pid and when it wrote it (the job's real start, on the node's clock)."""
        deadline = time.monotonic() + self.settings.launch_timeout
        wait = PID_POLL_FIRST
        while True:
            # the first look waits too: a wrapper spawned a moment ago has not yet written its pid
            await asyncio.sleep(wait)
            wait = min(PID_POLL_MAX, wait * 2)
            [probe] = await self.transport.probe([d.private], read=[L.PID], stat=[L.PID])
            pid = _pid(probe.files.get(L.PID))
            if pid is not None:
                return pid, began_at(probe)
            if time.monotonic() > deadline:
                raise TransportError(
                    f"the wrapper in {d.path} did not record its pid within {self.settings.launch_timeout} s"
                )

    async def existing(self, job_id: str, attempt: int, rank: int = 0) -> Existing | None:
        d = self.files().dir(job_id, attempt, rank)
        [probe] = await self.transport.probe([d.private], read=[L.PID, L.EXIT_CODE, L.REPORTED, L.ACCOUNT])
        if L.REPORTED in probe.files:
            return Existing(None, reported=True)
        if not _launched(probe):
            return None
        return Existing(await self._handle(probe), reported=False)

    async def adopt(self) -> list[RunHandle]:
        dirs = await self.files().listed()
        probes = await self.transport.probe(dirs, read=[L.PID, L.EXIT_CODE, L.REPORTED, L.ACCOUNT])
        handles: list[RunHandle] = []
        for probe in probes:
            if L.REPORTED in probe.files:
                continue
            if not _launched(probe):
                log.info("%s was prepared but never launched; its RunJob will be redelivered", probe.path)
                continue
            handle = await self._handle(probe)
            # A root on shared storage (an NFS home) holds other nodes' attempts too.
            if handle.run.node != self.settings.node:
                continue
            handles.append(handle)
        return handles

    async def _handle(self, probe: DirProbe) -> RunHandle:
        """The attempt whose executor's files ``probe`` read (its private directory)."""
        run = await self.files().read_run(probe.path)
        d = self.files().for_run(run)
        pid = _pid(probe.files.get(L.PID))
        details: dict[str, object] = {"pid": pid, "dir": d.path}
        account = probe.files.get(L.ACCOUNT, b"").decode("utf-8", "replace").strip()
        if account and self.files().as_account is not None:
            details["account"] = account
        return RunHandle(run, d.path, details, started_at=began_at(probe))

    async def poll(self, handles: Sequence[RunHandle]) -> dict[RunKey, RunStatus]:
        dirs = [self.files().of(h) for h in handles]
        probes = await self.transport.probe(
            [d.private for d in dirs],
            read=[L.PID, L.EXIT_CODE, L.SIGNAL],
            stat=[*STREAMS, L.EXIT_CODE, L.PID],
            alive_from=L.PID,
        )
        # the job's own directory only for its progress file's size and time (nothing read there)
        jobs = await self._progress_stats(handles, dirs)
        out: dict[RunKey, RunStatus] = {}
        for h, probe, progress in zip(handles, probes, jobs, strict=True):
            if probe.alive is not None:
                self._alive[h.key] = probe.alive
            out[h.key] = _status(probe, progress)
        return out

    async def _progress_stats(
        self, handles: Sequence[RunHandle], dirs: Sequence[L.AttemptDir]
    ) -> list[FileStat | None]:
        """Each job's progress file's size and time: one probe per account the jobs' directories are
        reached as (one for all where the executor reaches them itself). A probe that fails leaves
        its jobs' progress unknown for this poll; their end is still seen in the executor's files."""
        groups: dict[str | None, list[int]] = {}
        for i, h in enumerate(handles):
            groups.setdefault(account_of(h), []).append(i)
        out: list[FileStat | None] = [None] * len(handles)
        for account, idx in groups.items():
            t = self.files().reach(account)
            try:
                got = await t.probe([dirs[i].path for i in idx], stat=[L.PROGRESS])
            except TransportError as e:
                if account is None:
                    raise
                log.warning("reading the progress of %d job(s) as %s failed: %s", len(idx), account, e)
                continue
            for i, job in zip(idx, got, strict=True):
                out[i] = job.stats.get(L.PROGRESS)
        return out

    async def signal(self, handle: RunHandle, sig: signal.Signals) -> None:
        pid = handle.details.get("pid")
        if not isinstance(pid, int):
            raise TransportError(f"{handle.ref} has no process group to signal")
        # Recorded first: once KILL is sent the wrapper can no longer write an exit code itself.
        await self.transport.write_file(self.files().of(handle).own(L.SIGNAL), f"{int(sig)}\n".encode())
        account = account_of(handle)
        if account is not None:
            # The job's processes are its account's: the executor's login may not signal them. Sent
            # as the account, to its processes of the group (the wrapper and sudo keep running and
            # record the exit code); where that fails, sudo relays what the group gets to the job.
            try:
                if await self.files().reach(account).signal_group(pid, sig) and sig != signal.SIGKILL:
                    return
            except TransportError as e:
                log.warning("signalling %s as %s failed (%s); signalling its group", handle.ref, account, e)
        await self.transport.signal_group(pid, sig)

    async def cleanup(self, handle: RunHandle) -> None:
        """Kill what the job left running in its group, as a batch system ends a job's processes."""
        pid = handle.details.get("pid")
        account = account_of(handle)
        if account is not None and isinstance(pid, int):
            # what the job left of its account's processes (invisible to the login's liveness probe)
            try:
                await self.files().reach(account).signal_group(pid, signal.SIGKILL)
            except TransportError as e:
                log.warning("stopping what %s left running as %s failed: %s", handle.ref, account, e)
        if self._alive.pop(handle.key, False) and isinstance(pid, int):
            await self.transport.signal_group(pid, signal.SIGKILL)

    async def mark_reported(self, handle: RunHandle) -> None:
        await super().mark_reported(handle)
        self._alive.pop(handle.key, None)


def _int(raw: bytes | None) -> int | None:
    if raw is None:
        return None
    try:
        return int(raw.strip())
    except ValueError:
        return None


def _pid(raw: bytes | None) -> int | None:
    """The wrapper's pid once its one write of it is whole: the wrapper writes the file in place (a
    rename cost a process per job), so an empty or unended file is a pid still being written."""
    return _int(raw) if raw is not None and raw.endswith(b"\n") else None


def began_at(probe: DirProbe) -> float | None:
    """When the wrapper started the job: its pid file is written once, first thing (None: not yet)."""
    stat = probe.stats.get(L.PID)
    return stat.mtime if stat is not None else None


def _launched(probe: DirProbe) -> bool:
    return probe.exists and (_pid(probe.files.get(L.PID)) is not None or L.EXIT_CODE in probe.files)


def _status(probe: DirProbe, progress: FileStat | None) -> RunStatus:
    sizes = {s: probe.stats[s].size if s in probe.stats else 0 for s in STREAMS}
    mark = (progress.size, progress.mtime) if progress else None
    if not probe.exists:
        return RunStatus(True, reason=f"the attempt directory {probe.path} is gone", log_sizes=sizes)
    began = began_at(probe)
    code = _int(probe.files.get(L.EXIT_CODE))
    if code is not None:
        ended_at = probe.stats[L.EXIT_CODE].mtime if L.EXIT_CODE in probe.stats else None
        return RunStatus(
            True, exit_code=code, ended_at=ended_at, started_at=began, log_sizes=sizes, progress_mark=mark
        )
    sent = _int(probe.files.get(L.SIGNAL))
    if sent == signal.SIGKILL:
        return RunStatus(True, exit_code=128 + sent, started_at=began, log_sizes=sizes, progress_mark=mark)
    if probe.alive is False:
        return RunStatus(True, reason=VANISHED, started_at=began, log_sizes=sizes, progress_mark=mark)
    return RunStatus(False, started_at=began, log_sizes=sizes, progress_mark=mark)
