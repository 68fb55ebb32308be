"""Detached processes in attempt directories, over any transport (local now, SSH later).

The job runs in its own session under the fixed wrapper, so it outlives the executor; its end is
learned from the ``exit_code`` file the wrapper writes, never from the pid alone (reapers are late).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import posixpath
import signal
import time
from collections.abc import Sequence

from jobwire.contracts.v1 import NodeCapacity, RunJob, codec

from ..executor import STREAMS, Executor, Existing, OutputFile, RunHandle, RunKey, RunStatus, StartRefused
from ..inputs import INPUT_MODE, target_in
from ..settings import ExecutorSettings
from ..transport import DirProbe, Transport, TransportError
from . import layout as L
from .command import Plan, plan

log = logging.getLogger(__name__)
PROGRESS_MAX = 65536
VANISHED = (
    "the job's processes ended without recording an exit code (killed outside jobwire or the host restarted)"
)


class ProcessExecutor(Executor):
    """Runs jobs as detached process groups; subclasses supply the transport and the capacity."""

    backend = "process"

    def __init__(self, settings: ExecutorSettings, transport: Transport, root: str) -> None:
        super().__init__(settings)
        if not posixpath.isabs(root):
            raise ValueError(f"the runner's root must be an absolute path, not {root!r}")
        self.transport = transport
        self.root = root
        self._alive: dict[RunKey, bool] = {}

    def capacity(self) -> NodeCapacity:
        return NodeCapacity()

    def describe(self) -> dict[str, str]:
        return {"root": self.root, "transport": self.transport.name}

    async def close(self) -> None:
        await self.transport.close()

    def dir_of(self, run: RunJob) -> L.AttemptDir:
        return L.AttemptDir.of(self.root, run.job_id, run.attempt)

    async def start(self, run: RunJob) -> RunHandle:
        d = self.dir_of(run)
        p = plan(run.spec, d, self.catalog)
        t = self.transport
        for path in dict.fromkeys(p.dirs):
            await t.mkdir(path)
        await t.write_file(d.file(L.RUN_JSON), codec.encode(run))
        await t.write_file(d.file(L.WRAPPER), L.WRAPPER_SCRIPT.encode(), 0o755)
        for f in p.files:
            await t.write_file(f.path, f.data, f.mode)
        await self.place_inputs(run, d, p)
        env = {
            **run.spec.env,
            **await self.launch_env(run, d),
            "JOBWIRE_JOB_ID": run.job_id,
            "JOBWIRE_ATTEMPT": str(run.attempt),
            "JOBWIRE_PROGRESS_FILE": d.file(L.PROGRESS),
            "JOBWIRE_OUTPUT_DIR": d.outputs,
            "JOBWIRE_JOB_DIR": d.path,
        }
        try:
            await t.spawn_detached(["/bin/sh", d.file(L.WRAPPER), d.path, p.cwd, *p.argv], env=env)
        except OSError as e:
            if e.errno == errno.E2BIG:
                raise StartRefused("the command line or environment is too long for this node") from e
            raise
        pid, began = await self._wait_for_pid(d)
        log.info("started %s attempt %d as process group %d in %s", run.job_id, run.attempt, pid, d.path)
        return RunHandle(run, d.path, {"pid": pid, "dir": d.path}, started_at=began)

    async def place_inputs(self, run: RunJob, d: L.AttemptDir, p: Plan) -> None:
        """Write the job's named inputs below its work directory, read-only (0444), one at a time.

        Through the transport's ``write_file``, so the SSH executor places them on its node the same way.
        """
        if not run.spec.inputs:
            return
        if self.inputs is None:
            raise StartRefused("this executor has no access to the inputs store")
        taken = {f.path for f in p.files} | set(p.dirs)
        for ref in run.spec.inputs:
            target = target_in(d.work, ref)
            if target in taken:
                raise StartRefused(f"input {ref.name!r}: {ref.target!r} is taken by the job's own files")
            data = await self.inputs.fetch(run.owner, ref)
            await self.transport.mkdir(posixpath.dirname(target))
            await self.transport.write_file(target, data, INPUT_MODE)

    async def launch_env(self, run: RunJob, d: L.AttemptDir) -> dict[str, str]:
        """Environment this backend gives the attempt (its GPUs, say), over the job's own ``env``.

        Called once the attempt directory exists, just before the launch.
        """
        return {}

    async def _wait_for_pid(self, d: L.AttemptDir) -> tuple[int, float | None]:
        """The wrapper's pid and when it wrote it (the job's real start, on the node's clock)."""
        deadline = time.monotonic() + self.settings.launch_timeout
        while True:
            [probe] = await self.transport.probe([d.path], read=[L.PID], stat=[L.PID])
            pid = _int(probe.files.get(L.PID))
            if pid is not None:
                return pid, began_at(probe)
            if time.monotonic() > deadline:
                raise TransportError(
                    f"the wrapper in {d.path} did not record its pid within {self.settings.launch_timeout} s"
                )
            await asyncio.sleep(0.02)

    async def existing(self, job_id: str, attempt: int) -> Existing | None:
        d = L.AttemptDir.of(self.root, job_id, attempt)
        [probe] = await self.transport.probe([d.path], read=[L.PID, L.EXIT_CODE, L.REPORTED])
        if L.REPORTED in probe.files:
            return Existing(None, reported=True)
        if not _launched(probe):
            return None
        return Existing(await self._handle(probe), reported=False)

    async def adopt(self) -> list[RunHandle]:
        jobs = posixpath.join(self.root, "jobs")
        try:
            entries = await self.transport.list_dir(jobs, depth=2)
        except FileNotFoundError:
            return []
        dirs = [
            posixpath.join(jobs, e.name)
            for e in entries
            if e.kind == "dir" and e.name.count("/") == 1 and e.name.rsplit("/", 1)[1].isdigit()
        ]
        probes = await self.transport.probe(dirs, read=[L.PID, L.EXIT_CODE, L.REPORTED])
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
        run = codec.decode(await self.transport.read_file(posixpath.join(probe.path, L.RUN_JSON)), RunJob)
        pid = _int(probe.files.get(L.PID))
        return RunHandle(run, probe.path, {"pid": pid, "dir": probe.path}, started_at=began_at(probe))

    async def poll(self, handles: Sequence[RunHandle]) -> dict[RunKey, RunStatus]:
        probes = await self.transport.probe(
            [h.ref for h in handles],
            read=[L.PID, L.EXIT_CODE, L.SIGNAL],
            stat=[*STREAMS, L.PROGRESS, L.EXIT_CODE, L.PID],
            alive_from=L.PID,
        )
        out: dict[RunKey, RunStatus] = {}
        for h, probe in zip(handles, probes, strict=True):
            if probe.alive is not None:
                self._alive[h.key] = probe.alive
            out[h.key] = _status(probe)
        return out

    async def signal(self, handle: RunHandle, sig: signal.Signals) -> None:
        pid = handle.details.get("pid")
        if not isinstance(pid, int):
            raise TransportError(f"{handle.ref} has no process group to signal")
        # Recorded first: once KILL is sent the wrapper can no longer write an exit code itself.
        await self.transport.write_file(posixpath.join(handle.ref, L.SIGNAL), f"{int(sig)}\n".encode())
        await self.transport.signal_group(pid, sig)

    async def cleanup(self, handle: RunHandle) -> None:
        """Kill what the job left running in its group, as a batch system ends a job's processes."""
        pid = handle.details.get("pid")
        if self._alive.pop(handle.key, False) and isinstance(pid, int):
            await self.transport.signal_group(pid, signal.SIGKILL)

    async def read_log(self, handle: RunHandle, stream: str, offset: int, size: int) -> bytes:
        if stream not in STREAMS:
            raise ValueError(f"unknown log stream {stream!r}")
        try:
            return await self.transport.read_file(posixpath.join(handle.ref, stream), offset, size)
        except FileNotFoundError:
            return b""

    async def read_progress(self, handle: RunHandle) -> bytes | None:
        try:
            data = await self.transport.read_file(posixpath.join(handle.ref, L.PROGRESS), 0, PROGRESS_MAX + 1)
        except FileNotFoundError:
            return None
        return data if len(data) <= PROGRESS_MAX else None

    async def list_outputs(self, handle: RunHandle) -> list[OutputFile]:
        try:
            entries = await self.transport.list_dir(posixpath.join(handle.ref, L.OUTPUTS), depth=None)
        except FileNotFoundError:
            return []
        return [OutputFile(e.name, e.size) for e in entries if e.kind == "file"]

    async def read_output(self, handle: RunHandle, name: str, offset: int, size: int) -> bytes:
        if name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"output name {name!r} leaves the output directory")
        return await self.transport.read_file(posixpath.join(handle.ref, L.OUTPUTS, name), offset, size)

    def job_files(self, job_id: str, attempt: int) -> tuple[Transport, str] | None:
        return self.transport, L.AttemptDir.of(self.root, L.check_job_id(job_id), attempt).path

    async def purge(self, job_id: str) -> None:
        """``<root>/jobs/<job_id>`` and everything below it, over the transport (shared storage)."""
        await self.transport.remove_tree(posixpath.join(self.root, "jobs", L.check_job_id(job_id)))

    async def load_state(self, handle: RunHandle) -> bytes | None:
        try:
            return await self.transport.read_file(posixpath.join(handle.ref, L.STATE))
        except FileNotFoundError:
            return None

    async def save_state(self, handle: RunHandle, data: bytes) -> None:
        await self.transport.write_file(posixpath.join(handle.ref, L.STATE), data)

    async def mark_reported(self, handle: RunHandle) -> None:
        await self.transport.write_file(posixpath.join(handle.ref, L.REPORTED), b"")
        self._alive.pop(handle.key, None)


def _int(raw: bytes | None) -> int | None:
    if raw is None:
        return None
    try:
        return int(raw.strip())
    except ValueError:
        return None


def began_at(probe: DirProbe) -> float | None:
    """When the wrapper started the job: its pid file is written once, first thing (None: not yet)."""
    stat = probe.stats.get(L.PID)
    return stat.mtime if stat is not None else None


def _launched(probe: DirProbe) -> bool:
    return probe.exists and (L.PID in probe.files or L.EXIT_CODE in probe.files)


def _status(probe: DirProbe) -> RunStatus:
    sizes = {s: probe.stats[s].size if s in probe.stats else 0 for s in STREAMS}
    progress = probe.stats.get(L.PROGRESS)
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
