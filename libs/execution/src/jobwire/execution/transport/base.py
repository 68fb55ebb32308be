"""What a process runner needs from the machine it runs jobs on, local or across SSH.

Paths are POSIX strings on the transport's machine. Every method is one round-trip, so a runner
that polls many jobs asks for all of them at once with :meth:`Transport.probe`.
"""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from jobwire.contracts.v1.files import FileEntry


class TransportError(RuntimeError):
    """The transport could not do what was asked (connection lost, command failed)."""


class TransportTimeout(TransportError, TimeoutError):
    """A command ran past its timeout and was killed."""


@dataclass(frozen=True)
class ExecResult:
    rc: int
    stdout: bytes
    stderr: bytes

    def check(self, what: str) -> ExecResult:
        """Raise TransportError with the command's stderr unless it exited 0."""
        if self.rc != 0:
            err = self.stderr.decode("utf-8", "replace").strip()
            raise TransportError(f"{what} failed with exit code {self.rc}: {err[-2000:]}")
        return self


@dataclass(frozen=True)
class FileStat:
    size: int
    mtime: float


@dataclass(frozen=True)
class DirEntry:
    """One entry below a listed directory; ``name`` is relative to it ("a/b.txt" when recursive)."""

    name: str
    kind: Literal["file", "dir", "link", "other"]
    size: int = 0


@dataclass(frozen=True)
class DirProbe:
    """The small state of one directory as :meth:`Transport.probe` saw it."""

    path: str
    exists: bool
    #: contents of the requested small files that exist (at most ``max_read`` bytes each)
    files: dict[str, bytes] = field(default_factory=dict)
    #: stat of the requested files that exist
    stats: dict[str, FileStat] = field(default_factory=dict)
    #: whether the process group named in the ``alive_from`` file still has members; None without it
    alive: bool | None = None


class Transport(ABC):
    """Run commands and touch files on one machine. Implementations: ``local`` (here), ``ssh`` later."""

    name: ClassVar[str] = ""
    #: called on the event loop with the pid of a process this transport started with
    #: :meth:`spawn_detached` once it has ended, by a transport that can tell at once (the local one,
    #: through pidfds); others never call it
    on_exit: Callable[[int], None] | None = None

    @abstractmethod
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
        """Run ``argv`` (never a shell string) and wait; ``env`` is added to the transport's environment,
        or with ``inherit`` (``NAME``/``PREFIX*`` patterns) to only the variables of it they allow.

        ``argv[0]`` is looked up in the transport's own PATH, not in ``env``'s, so a job's PATH cannot
        redirect jobwire's helpers. Raises TransportTimeout when ``timeout`` passes.
        """

    @abstractmethod
    async def read_file(self, path: str, offset: int = 0, size: int | None = None) -> bytes:
        """Up to ``size`` bytes from ``offset`` (all the rest when None); FileNotFoundError if missing."""

    @abstractmethod
    async def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Replace ``path`` atomically (write a temporary file, then rename) with exactly ``mode``."""

    @abstractmethod
    async def mkdir(self, path: str) -> None:
        """Create ``path`` and its parents; nothing happens when it exists."""

    async def chmod(self, path: str, mode: int) -> None:
        """Set ``path``'s permission bits (an attempt's private directory is 0700)."""
        (await self.run(["chmod", f"{mode:o}", "--", path])).check(f"chmod {mode:o} {path}")

    async def give_to(self, path: str, user: str, group: str) -> None:
        """Make ``path`` and everything below it belong to ``user``:``group`` (a job's directory under
        run-as), never following a symlink. Called before the job's account can write there."""
        (await self.run(["chown", "-R", "-P", "-h", "--", f"{user}:{group}", path])).check(f"chown {path}")

    @abstractmethod
    async def list_dir(self, path: str, *, depth: int | None = 1) -> list[DirEntry]:
        """Entries below ``path`` down to ``depth`` levels (None: all); symlinks are listed, never followed.

        FileNotFoundError when ``path`` does not exist.
        """

    @abstractmethod
    async def remove_tree(self, path: str) -> None:
        """Delete ``path`` and everything below it; nothing happens when it is missing."""

    async def read_confined(self, root: str, rel: str, offset: int, size: int) -> tuple[bytes, int]:
        """Up to ``size`` bytes of the regular file ``root/rel`` and its whole size, never following a
        symlink below ``root`` (:class:`~.confined.PathRefused`); FileNotFoundError when absent."""
        raise NotImplementedError(f"the {self.name} transport cannot read a job's files")

    async def list_confined(self, root: str, rel: str, limit: int) -> tuple[list[FileEntry], int]:
        """Entries below ``root/rel``, recursively, symlinks listed and not entered (at most ``limit``;
        the count left out second)."""
        raise NotImplementedError(f"the {self.name} transport cannot list a job's files")

    @abstractmethod
    async def probe(
        self,
        dirs: Sequence[str],
        *,
        read: Sequence[str] = (),
        stat: Sequence[str] = (),
        max_read: int = 65536,
        alive_from: str | None = None,
    ) -> list[DirProbe]:
        """One call for many directories: small files' contents, other files' sizes, group liveness.

        Results come in the order of ``dirs``. ``alive_from`` names a file in ``read`` that holds a
        process group id; liveness is "some process of that group exists" (zombies count, so a
        reaper's delay shows up here — runners learn of an end from an exit-code file instead).
        An SSH transport answers with one remote command for all directories.
        """

    async def signal_group(self, pgid: int, sig: signal.Signals) -> bool:
        """Send ``sig`` to every process of group ``pgid``; False when the group no longer exists."""
        result = await self.run(["kill", "-s", sig.name.removeprefix("SIG"), "--", f"-{pgid}"])
        return result.rc == 0

    async def spawn_detached(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        inherit: Sequence[str] | None = None,
    ) -> None:
        """Start ``argv`` in a new session (its own process group) and return without waiting for it.

        The process must close the inherited stdin/stdout/stderr at once (the runner's wrapper does).
        With ``inherit`` (``NAME`` / ``PREFIX*`` patterns) it starts with ``env`` and only the allowed
        variables of the transport's environment, nothing else of it (a job's launch); without, with
        ``env`` added to all of it.
        """
        if inherit is not None:
            raise NotImplementedError(f"the {self.name} transport cannot start a clean environment")
        (await self.run(["setsid", "-f", *argv], env=env)).check("starting a detached process")

    async def write_tree(
        self, dirs: Sequence[str], modes: Mapping[str, int], files: Sequence[tuple[str, bytes, int]]
    ) -> None:
        """Make ``dirs`` (parents first), set ``modes`` on them, then write ``files`` (path, data, mode)
        each atomically: an attempt's directory in one call, which a transport may do in one step."""
        for path in dirs:
            await self.mkdir(path)
        for path, mode in modes.items():
            await self.chmod(path, mode)
        for path, data, mode in files:
            await self.write_file(path, data, mode)

    async def make_fifos(self, paths: Sequence[str]) -> bool:
        """Make fresh named pipes (0600) at ``paths`` ahead of a launch, replacing what is there, and
        say whether it did: a transport where that costs no more than the wrapper's own ``mkfifo``
        and ``rm`` processes (an SSH round trip each) leaves them to the wrapper (False)."""
        return False

    async def remove_files(self, paths: Sequence[str]) -> None:
        """Remove ``paths`` (files or pipes; one already gone is fine)."""
        for path in paths:
            await self.run(["rm", "-f", "--", path])

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the local transport holds none."""
