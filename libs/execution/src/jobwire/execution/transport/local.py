"""The transport for this machine: commands via asyncio; file work in a thread where it can be
large (whole files, trees), and on the event loop itself where it is small and bounded.

A job's bookkeeping (its attempt's tree, pipes, journal, pid and exit code probes) is a few small
files on a local disk: microseconds each. Handed to a pooled thread, each was a hop through the pool
and back, and the thread and the loop took the GIL from each other around every system call: strace
of the executor over 500 no-op jobs counted about 1,050 futex calls per job. Small work therefore runs
inline (:data:`INLINE_MAX` bytes at most per file read or written).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import grp
import os
import pwd
import secrets
import shutil
import signal
import stat as st
from collections.abc import Mapping, Sequence
from typing import ClassVar

from jobwire.contracts.v1.files import FileEntry

from ..attempt.env import inherited
from .base import DirEntry, DirProbe, ExecResult, FileStat, Transport, TransportError, TransportTimeout
from .confined import list_local, read_local

#: The executor's own settings (and secrets such as JOBWIRE_NATS_PASSWORD) never reach a job.
PRIVATE_ENV_PREFIX = "JOBWIRE_"


def base_environment() -> dict[str, str]:
    """This process's environment without jobwire's own variables: what commands start from."""
    return {k: v for k, v in os.environ.items() if not k.startswith(PRIVATE_ENV_PREFIX)}


def _resolve(program: str) -> str:
    """Find ``program`` in the executor's PATH (a job's PATH must not choose jobwire's helpers)."""
    if "/" in program:
        return program
    found = shutil.which(program)
    if found is None:
        raise TransportError(f"{program!r} was not found in PATH on this machine")
    return found


#: the most bytes a file read or written on the event loop itself may hold (a log chunk, a journal);
#: a larger or unbounded one goes to a thread
INLINE_MAX = 64 * 1024

#: the detached processes this executor started and has not reaped yet (its children: the wrappers)
_SPAWNED: set[int] = set()


def _reap() -> None:
    """Collect the detached processes that have ended (one ``waitpid`` with WNOHANG each: at most as
    many as run at once), so none stays a zombie; only this executor's own, never asyncio's."""
    for pid in list(_SPAWNED):
        _reap_one(pid)


def _reap_one(pid: int) -> None:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        done = pid
    if done:
        _SPAWNED.discard(pid)


def lower_priority(pid: int, nice: int) -> None:
    """Give process ``pid`` (a job's wrapper, just started) the CPU priority ``nice``, for it and all it
    starts. Two knobs, because which one the kernel weighs depends on the host:

    - the process's own nice value, which its children inherit: what counts between processes of one
      cgroup where session autogroups are off (a systemd service with its own CPU controller);
    - its session's autogroup nice (``/proc/<pid>/autogroup``): with autogroups on (Debian's default
      outside such a cgroup), the kernel shares the CPU between sessions first, and every job leads a
      session of its own, so one job's session weighed as much as the whole gateway's, whatever its
      processes' nice. The whole session is lowered at once, children started before this included.

    The process may have ended already (a no-op job): nothing is left to lower then."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    with contextlib.suppress(OSError), open(f"/proc/{pid}/autogroup", "w") as group:
        group.write(str(nice))


class LocalTransport(Transport):
    """Runs everything on the machine the executor runs on."""

    name: ClassVar[str] = "local"

    def __init__(self, job_nice: int = 0) -> None:
        #: pidfd -> pid of each detached process watched for its end (see :meth:`_watch`)
        self._watched: dict[int, int] = {}
        #: the CPU priority (nice, 0-19) of the detached processes (the jobs): 0 leaves them at ours
        self.job_nice = job_nice

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        inherit: Sequence[str] | None = None,
    ) -> ExecResult:
        if not argv:
            raise ValueError("argv is empty")
        start = base_environment() if inherit is None else inherited(os.environ, inherit)
        proc = await asyncio.create_subprocess_exec(
            _resolve(argv[0]),
            *argv[1:],
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**start, **(env or {})},
            cwd=cwd,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise TransportTimeout(f"{argv[0]} ran past {timeout} s and was killed") from None
        assert proc.returncode is not None
        return ExecResult(proc.returncode, out, err)

    async def spawn_detached(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        inherit: Sequence[str] | None = None,
    ) -> None:
        """Started by ``posix_spawn`` as the leader of a new session (``setsid=True``): no ``setsid -f``
        process per job to exec, fork and wait for in a pooled thread (py-spy had asyncio's
        ``create_subprocess_exec`` at a fifth of the executor's busy time in a burst of no-op jobs, and
        the setsid process was a tenth of a no-op job's wrapper CPU). The process is this executor's
        child, so it is reaped here (:func:`_reap`, at each launch, probe and signal) instead of by
        init; it outlives the executor all the same. Every descriptor of the executor is
        close-on-exec; stdin, stdout and stderr are /dev/null until the wrapper sets its own.
        With :attr:`job_nice` the process is lowered as soon as it runs (:func:`lower_priority`)."""
        start = base_environment() if inherit is None else inherited(os.environ, inherit)
        if not argv:
            raise ValueError("argv is empty")
        _reap()
        program = _resolve(argv[0])
        pid = os.posix_spawn(  # noqa: ASYNC221 - returns once the child is exec'd, no waiting
            program,
            list(argv),
            {**start, **(env or {})},
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
            ],
            setsid=True,
        )
        _SPAWNED.add(pid)
        if self.job_nice:
            lower_priority(pid, self.job_nice)
        self._watch(pid)

    def _watch(self, pid: int) -> None:
        """Hear at once when the detached process ends: its pidfd turns readable on the event loop, and
        :attr:`on_exit` tells the run loop, which polls then instead of at its next tick (a no-op job
        held its slot a tick longer than it ran, up to 0.25 s by default). The wrapper writes the
        exit code before it exits, so the poll that follows finds it. Where pidfds are missing (a
        kernel before 5.3) the ticks alone find the end, as before."""
        if self.on_exit is None:
            return
        try:
            fd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            return
        self._watched[fd] = pid
        asyncio.get_running_loop().add_reader(fd, self._exited, fd)

    def _exited(self, fd: int) -> None:
        pid = self._watched.pop(fd)
        asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)
        _reap_one(pid)
        if self.on_exit is not None:
            self.on_exit(pid)

    async def close(self) -> None:
        """Stop watching the detached processes (they run on; a restart finds them by polling)."""
        loop = asyncio.get_running_loop()
        for fd in list(self._watched):
            del self._watched[fd]
            loop.remove_reader(fd)
            os.close(fd)

    async def write_tree(
        self, dirs: Sequence[str], modes: Mapping[str, int], files: Sequence[tuple[str, bytes, int]]
    ) -> None:
        if sum(len(data) for _, data, _ in files) <= INLINE_MAX:
            _write_tree(dirs, modes, files)
        else:
            await asyncio.to_thread(_write_tree, dirs, modes, files)  # one thread hop, not one per file

    async def make_fifos(self, paths: Sequence[str]) -> bool:
        _make_fifos(paths)
        return True

    async def remove_files(self, paths: Sequence[str]) -> None:
        _unlink(paths)

    async def signal_group(self, pgid: int, sig: signal.Signals) -> bool:
        _reap()  # an ended wrapper left unreaped would keep its group alive to killpg
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return False
        return True

    async def read_file(self, path: str, offset: int = 0, size: int | None = None) -> bytes:
        if size is not None and size <= INLINE_MAX:
            return _read(path, offset, size)
        return await asyncio.to_thread(_read, path, offset, size)

    async def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        if len(data) <= INLINE_MAX:
            _write_atomic(path, data, mode)
        else:
            await asyncio.to_thread(_write_atomic, path, data, mode)

    async def mkdir(self, path: str) -> None:
        await asyncio.to_thread(os.makedirs, path, exist_ok=True)

    async def chmod(self, path: str, mode: int) -> None:
        await asyncio.to_thread(os.chmod, path, mode)

    async def give_to(self, path: str, user: str, group: str) -> None:
        await asyncio.to_thread(_give_to, path, user, group)

    async def list_dir(self, path: str, *, depth: int | None = 1) -> list[DirEntry]:
        return await asyncio.to_thread(_list, path, depth)

    async def remove_tree(self, path: str) -> None:
        await asyncio.to_thread(_remove_tree, path)

    async def read_confined(self, root: str, rel: str, offset: int, size: int) -> tuple[bytes, int]:
        return await asyncio.to_thread(read_local, root, rel, offset, size)

    async def list_confined(self, root: str, rel: str, limit: int) -> tuple[list[FileEntry], int]:
        return await asyncio.to_thread(list_local, root, rel, limit)

    async def probe(
        self,
        dirs: Sequence[str],
        *,
        read: Sequence[str] = (),
        stat: Sequence[str] = (),
        max_read: int = 65536,
        alive_from: str | None = None,
    ) -> list[DirProbe]:
        if not dirs:
            return []
        _reap()  # before the liveness probes: a zombie wrapper still counts as its group's member
        if max_read <= INLINE_MAX:  # a few small files and stats per directory
            return [_probe_one(d, read, stat, max_read, alive_from) for d in dirs]
        return await asyncio.to_thread(
            lambda: [_probe_one(d, read, stat, max_read, alive_from) for d in dirs]
        )


def _read(path: str, offset: int, size: int | None) -> bytes:
    """``size`` bytes from ``offset`` (all to the end with None) by raw ``pread``: a Python file
    object also asked fstat, isatty (ioctl) and lseek of every small file a probe reads."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        parts: list[bytes] = []
        want = -1 if size is None else size
        while want != 0:
            try:
                got = os.pread(fd, (1 << 20) if want < 0 else min(want, 1 << 20), offset)
            except OSError as e:
                if e.errno != errno.ESPIPE or parts:
                    raise
                with open(fd, "rb", closefd=False) as f:  # not a regular file: read it in order
                    return f.read() if size is None else f.read(size)
            if not got:
                break
            parts.append(got)
            offset += len(got)
            if want > 0:
                want -= len(got)
        return b"".join(parts)
    finally:
        os.close(fd)


def _write_atomic(path: str, data: bytes, mode: int) -> None:
    """Written beside ``path`` and renamed over it, with raw writes (no Python file object)."""
    tmp = f"{path}.tmp-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write_tree(
    dirs: Sequence[str], modes: Mapping[str, int], files: Sequence[tuple[str, bytes, int]]
) -> None:
    for path in dirs:
        os.makedirs(path, exist_ok=True)
    for path, mode in modes.items():
        os.chmod(path, mode)
    for path, data, mode in files:
        _write_atomic(path, data, mode)


def _unlink(paths: Sequence[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _make_fifos(paths: Sequence[str]) -> None:
    """Fresh pipes: one left by an earlier launch may still have its reader (a wrapper that died
    before its pid), which a new writer would share its output with."""
    _unlink(paths)
    for path in paths:
        os.mkfifo(path, 0o600)


def _give_to(path: str, user: str, group: str) -> None:
    uid = int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid
    gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    os.lchown(path, uid, gid)
    for top, dirs, files in os.walk(path, followlinks=False):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(top, name), uid, gid)


def _kind(mode: int) -> tuple[str, bool]:
    if st.S_ISLNK(mode):
        return "link", False
    if st.S_ISDIR(mode):
        return "dir", True
    if st.S_ISREG(mode):
        return "file", False
    return "other", False


def _list(path: str, depth: int | None) -> list[DirEntry]:
    out: list[DirEntry] = []

    def walk(directory: str, prefix: str, level: int) -> None:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            info = e.stat(follow_symlinks=False)
            kind, descend = _kind(info.st_mode)
            name = f"{prefix}{e.name}"
            out.append(DirEntry(name, kind, info.st_size if kind == "file" else 0))  # type: ignore[arg-type]
            if descend and (depth is None or level < depth):
                walk(e.path, f"{name}/", level + 1)

    walk(path, "", 1)
    return out


def _remove_tree(path: str) -> None:
    if os.path.islink(path):
        os.unlink(path)
    elif os.path.exists(path):
        shutil.rmtree(path)


def _group_alive(raw: bytes) -> bool | None:
    try:
        pgid = int(raw.strip())
    except ValueError:
        return None
    if pgid <= 1:
        return None
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _probe_one(
    path: str, read: Sequence[str], stat: Sequence[str], max_read: int, alive_from: str | None
) -> DirProbe:
    try:
        names = set(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return DirProbe(path, exists=False)
    files: dict[str, bytes] = {}
    for name in read:
        if name in names:
            with contextlib.suppress(FileNotFoundError):
                files[name] = _read(os.path.join(path, name), 0, max_read)
    stats: dict[str, FileStat] = {}
    for name in stat:
        if name in names:
            with contextlib.suppress(FileNotFoundError):
                info = os.stat(os.path.join(path, name))
                stats[name] = FileStat(info.st_size, info.st_mtime)
    alive = _group_alive(files[alive_from]) if alive_from and alive_from in files else None
    return DirProbe(path, True, files, stats, alive)
