"""The SSH transport: one pooled, keep-alive connection per host (through jump hosts), SFTP for files.

Every remote command is built by :mod:`.shell` from fixed text and quoted values; a runner's
``probe`` is one remote command for all its directories. Blocking paramiko calls run in this
transport's own threads, at most ``max_channels`` at once (sshd's MaxSessions is 10 by default).
A broken connection is dropped and reopened on next use, with exponential backoff between tries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import posixpath
import random
import secrets
import select
import signal
import stat
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar, TypeVar

import paramiko

from jobwire.contracts.v1.files import FileEntry

from . import shell
from .base import DirEntry, DirProbe, ExecResult, Transport, TransportError, TransportTimeout
from .confined import NotRegular, PathRefused, parts_of
from .sshconn import HostKeyError, SshHost, chain_label, close_chain, open_chain

log = logging.getLogger(__name__)
T = TypeVar("T")
#: paramiko and socket failures that mean "this connection is no good any more"
CONNECTION_ERRORS = (paramiko.SSHException, EOFError, ConnectionError, TimeoutError, OSError)
#: tries to open a session channel the server refused (its slots free up as closes arrive)
SESSION_RETRIES = 6

__all__ = ["HostKeyError", "SshHost", "SshTransport"]


def _lstat_walk(s: paramiko.SFTPClient, root: str, parts: list[str], *, want_dir: bool) -> str:
    """``root/parts`` after checking that no component is a symlink and the last is what is wanted."""
    path = root
    for i, part in enumerate(parts):
        path = posixpath.join(path, part)
        mode = s.lstat(path).st_mode or 0
        if stat.S_ISLNK(mode):
            raise PathRefused(f"{'/'.join(parts[: i + 1])} is a symlink; it is not followed")
        last = i == len(parts) - 1
        if (not last or want_dir) and not stat.S_ISDIR(mode):
            raise NotRegular(f"{'/'.join(parts[: i + 1])} is not a directory")
        if last and not want_dir and not stat.S_ISREG(mode):
            raise NotRegular(f"{'/'.join(parts)} is not a regular file")
    return path


class SshTransport(Transport):
    """Runs commands and touches files on ``target``, reached through ``jumps`` in order."""

    name: ClassVar[str] = "ssh"

    def __init__(
        self,
        target: SshHost,
        jumps: Sequence[SshHost] = (),
        *,
        connect_timeout: float = 10.0,
        command_timeout: float = 60.0,
        keepalive: float = 15.0,
        max_channels: int = 6,
        backoff_max: float = 30.0,
    ) -> None:
        if max_channels < 2:
            raise ValueError("max_channels must leave room for SFTP and one command (at least 2)")
        self.target = target
        self.jumps = list(jumps)
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.keepalive = keepalive
        self.backoff_max = backoff_max
        # SFTP keeps one channel open; commands share the rest.
        self._channels = asyncio.Semaphore(max_channels - 1)
        self._pool = ThreadPoolExecutor(max_channels + 2, thread_name_prefix=f"ssh-{target.host}")
        self._lock = threading.Lock()
        self._sftp_lock = threading.Lock()
        self._chain: list[paramiko.SSHClient] = []
        self._sftp: paramiko.SFTPClient | None = None
        self._failures = 0
        self._next_try = 0.0
        self._last_error: str | None = None
        self._closed = False

    @property
    def label(self) -> str:
        via = f" via {chain_label(self.jumps)}" if self.jumps else ""
        return f"{self.target.label}{via}"

    # --- the connection -------------------------------------------------------------------------

    def _connected(self) -> paramiko.SSHClient:
        """The live client for the target, connecting (or waiting out the backoff) as needed."""
        with self._lock:
            if self._closed:
                raise TransportError(f"{self.label}: the transport is closed")
            if self._chain:
                transport = self._chain[-1].get_transport()
                if transport is not None and transport.is_active():
                    return self._chain[-1]
                self._drop_locked("the connection closed")
            wait = self._next_try - time.monotonic()
            if wait > 0:
                raise TransportError(
                    f"{self.label}: not connected ({self._last_error}); next try in {wait:.1f} s"
                )
            try:
                self._chain = open_chain(
                    self.target, self.jumps, timeout=self.connect_timeout, keepalive=self.keepalive
                )
            except Exception as e:
                self._failures += 1
                delay = min(self.backoff_max, 0.5 * 2 ** (self._failures - 1)) * random.uniform(0.8, 1.2)
                self._next_try = time.monotonic() + delay
                self._last_error = str(e)
                # one line when the host stops answering; the retries that follow are debug noise
                level = logging.ERROR if isinstance(e, HostKeyError) else logging.WARNING
                if self._failures > 1 and not isinstance(e, HostKeyError):
                    level = logging.DEBUG
                log.log(level, "ssh %s: connecting failed (try %d): %s", self.label, self._failures, e)
                if isinstance(e, TransportError):
                    raise
                raise TransportError(f"{self.label}: {e}") from e
            if self._failures:
                log.info("ssh %s: connected again after %d failed tries", self.label, self._failures)
            self._failures, self._last_error = 0, None
            return self._chain[-1]

    def _drop_locked(self, why: str) -> None:
        if self._chain:
            log.info("ssh %s: dropping the connection (%s)", self.label, why)
        self._sftp = None
        close_chain(self._chain)

    def _drop(self, why: str, client: paramiko.SSHClient | None = None) -> None:
        """Drop the connection ``client`` belongs to (not a newer one made meanwhile)."""
        with self._lock:
            if client is None or (self._chain and self._chain[-1] is client):
                self._drop_locked(why)

    async def _call(self, fn: Callable[[], T], timeout: float) -> T:
        """Run blocking ``fn`` in our threads; past ``timeout`` the connection is dropped (unblocking it)."""
        loop = asyncio.get_running_loop()
        async with self._channels:
            current = self._chain[-1] if self._chain else None
            fut = loop.run_in_executor(self._pool, fn)
            try:
                return await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                # The thread is stuck on a silent peer: closing the connection wakes it.
                # (A connect in progress has timeouts of its own.)
                if current is not None:
                    self._pool.submit(self._drop, f"no answer within {timeout:.0f} s", current)
                raise TransportTimeout(f"{self.label}: no answer within {timeout:.0f} s") from None

    def _budget(self, timeout: float | None) -> float:
        return (timeout or self.command_timeout) + self.connect_timeout * (len(self.jumps) + 1)

    # --- commands -------------------------------------------------------------------------------

    def _open_session(self, client: paramiko.SSHClient, transport: paramiko.Transport) -> paramiko.Channel:
        """A session channel; a refusal (sshd's MaxSessions still counting closing channels) is retried."""
        for attempt in range(SESSION_RETRIES):
            try:
                return transport.open_session(timeout=self.connect_timeout)
            except paramiko.SSHException as e:
                # Refused while the connection stays up (paramiko may hand the reason to another
                # thread, leaving "Unable to open channel"): wait for slots, do not reconnect.
                refused = isinstance(e, paramiko.ChannelException) or "Unable to open channel" in str(e)
                if not (refused and transport.is_active()):
                    self._drop(f"opening a channel failed: {e}", client)
                    raise TransportError(f"{self.label}: opening a channel failed: {e}") from e
                if attempt == SESSION_RETRIES - 1:
                    raise TransportError(f"{self.label}: the server refused a channel: {e}") from e
                time.sleep(0.05 * 2**attempt)
            except CONNECTION_ERRORS as e:
                self._drop(f"opening a channel failed: {e}", client)
                raise TransportError(f"{self.label}: opening a channel failed: {e}") from e
        raise AssertionError("unreachable")

    def _exec(self, cmd: str, stdin: bytes | None, timeout: float) -> ExecResult:
        client = self._connected()
        transport = client.get_transport()
        assert transport is not None
        chan = self._open_session(client, transport)
        try:
            chan.exec_command(cmd)
            if stdin:
                chan.sendall(stdin)
            chan.shutdown_write()
            out, err = bytearray(), bytearray()
            deadline = time.monotonic() + timeout
            while not chan.closed or chan.recv_ready() or chan.recv_stderr_ready():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TransportTimeout(f"{self.label}: the command ran past {timeout:g} s")
                select.select([chan], [], [], min(left, 1.0))
                while chan.recv_ready():
                    out += chan.recv(65536)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
            rc = chan.recv_exit_status()
        except TransportError:
            raise
        except CONNECTION_ERRORS as e:
            self._drop(f"a command failed: {e}", client)
            raise TransportError(f"{self.label}: the connection failed during a command: {e}") from e
        finally:
            chan.close()
        return ExecResult(rc if rc >= 0 else 255, bytes(out), bytes(err))

    async def shell(
        self, cmd: str, *, stdin: bytes | None = None, timeout: float | None = None
    ) -> ExecResult:
        """Run shell text built by :mod:`.shell` (never raw user text)."""
        t = timeout or self.command_timeout
        return await self._call(lambda: self._exec(cmd, stdin, t), self._budget(t))

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
        cmd = shell.command(argv, env=env, cwd=cwd, inherit=inherit)
        return await self.shell(cmd, stdin=stdin, timeout=timeout)

    async def spawn_detached(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        inherit: Sequence[str] | None = None,
    ) -> None:
        # stdin/stdout closed at once, so the channel ends as soon as setsid has forked.
        cmd = shell.command(["setsid", "-f", *argv], env=env, inherit=inherit, tail="</dev/null >/dev/null")
        (await self.shell(cmd)).check("starting a detached process")

    async def signal_group(self, pgid: int, sig: signal.Signals) -> bool:
        if pgid <= 1:
            raise ValueError(f"refusing to signal process group {pgid}")
        result = await self.shell(shell.script(shell.KILL_SCRIPT, [sig.name.removeprefix("SIG"), str(pgid)]))
        return result.rc == 0

    # --- files ----------------------------------------------------------------------------------

    def _with_sftp(self, fn: Callable[[paramiko.SFTPClient], T]) -> T:
        client = self._connected()
        with self._sftp_lock:
            try:
                if self._sftp is None:
                    self._sftp = client.open_sftp()
                return fn(self._sftp)
            except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError):
                raise
            except CONNECTION_ERRORS as e:
                if isinstance(e, OSError) and e.errno is not None:
                    raise  # an SFTP status (no such file, permission denied), not a broken connection
                self._drop(f"SFTP failed: {e}", client)
                raise TransportError(f"{self.label}: SFTP failed: {e}") from e

    async def _sftp_call(self, fn: Callable[[paramiko.SFTPClient], T]) -> T:
        return await self._call(lambda: self._with_sftp(fn), self._budget(None))

    async def home(self) -> str:
        """The login user's home directory on the target (for ``~/`` paths)."""
        return await self._sftp_call(lambda s: s.normalize("."))

    async def read_file(self, path: str, offset: int = 0, size: int | None = None) -> bytes:
        def read(s: paramiko.SFTPClient) -> bytes:
            with s.open(path, "rb") as f:
                if offset:
                    f.seek(offset)
                if size is None:
                    f.prefetch()
                    return bytes(f.read())
                return bytes(f.read(size))

        return await self._sftp_call(read)

    async def read_confined(self, root: str, rel: str, offset: int, size: int) -> tuple[bytes, int]:
        """The same walk as on this machine, with ``lstat`` over SFTP (SFTP has no ``openat``: a
        symlink swapped in after the walk and before the open is the remaining window)."""
        parts = parts_of(rel)
        if not parts:
            raise PathRefused("the job's directory itself is not a file: list it instead")

        def read(s: paramiko.SFTPClient) -> tuple[bytes, int]:
            path = _lstat_walk(s, root, parts, want_dir=False)
            with s.open(path, "rb") as f:
                total = f.stat().st_size or 0
                f.seek(max(0, offset))
                return bytes(f.read(max(0, size))), total

        return await self._sftp_call(read)

    async def list_confined(self, root: str, rel: str, limit: int) -> tuple[list[FileEntry], int]:
        parts = parts_of(rel)
        path = await self._sftp_call(lambda s: _lstat_walk(s, root, parts, want_dir=True))
        entries = await self.list_dir(path, depth=None)
        prefix = "/".join(parts)
        out = [
            FileEntry(path="/".join(p for p in (prefix, e.name) if p), kind=e.kind, size=e.size)
            for e in sorted(entries, key=lambda e: e.name)
        ]
        return out[:limit], max(0, len(out) - limit)

    async def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        tmp = f"{path}.tmp-{secrets.token_hex(4)}"

        def write(s: paramiko.SFTPClient) -> None:
            try:
                with s.open(tmp, "wb") as f:
                    f.set_pipelined(True)
                    f.write(data)
                s.chmod(tmp, mode)
                s.posix_rename(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError, paramiko.SSHException):
                    s.remove(tmp)
                raise

        await self._sftp_call(write)

    async def mkdir(self, path: str) -> None:
        (await self.run(["mkdir", "-p", "--", path])).check(f"creating {path}")

    async def list_dir(self, path: str, *, depth: int | None = 1) -> list[DirEntry]:
        result = await self.shell(
            shell.script(shell.LIST_SCRIPT, [path, "" if depth is None else str(depth)])
        )
        if result.rc == 3:
            raise FileNotFoundError(path)
        return shell.parse_list(result.check(f"listing {path}").stdout)

    async def remove_tree(self, path: str) -> None:
        (await self.run(["rm", "-rf", "--", path])).check(f"removing {path}")

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
        norm = [posixpath.normpath(d) for d in dirs]
        args = shell.probe_args(norm, read, stat, max_read, alive_from)
        result = await self.shell(shell.script(shell.PROBE_SCRIPT, args))
        if b"\nE\n" not in b"\n" + result.stdout:
            result.check("probing job directories")
            raise TransportError(f"{self.label}: the probe's output was cut short")
        probes = shell.parse_probe(result.stdout, norm, read, stat, max_read)
        return [DirProbe(d, p.exists, p.files, p.stats, p.alive) for d, p in zip(dirs, probes, strict=True)]

    async def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop_locked("closed")
        self._pool.shutdown(wait=False, cancel_futures=True)
