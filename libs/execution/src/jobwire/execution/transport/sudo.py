"""Acting as a job's account through ``sudo -n -u ACCOUNT --`` where the executor is not root.

On an SSH node the executor's login account plays the part root plays locally (issue 12 item 1): it
keeps the attempt's own files, but it cannot give a directory away, so everything in the job's own
directory (0700, the account's) is made, written and read *as the account*, by fixed scripts run
through sudo over the login transport. Values reach those scripts only as arguments and stdin, never
spliced into shell text. Reading as the account confines every read to what the account itself may
read; the scripts add the local rules on top: no symlink followed, regular files with one name only,
owned by the account.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from jobwire.contracts.v1.files import FileEntry

from ..accounts import StartRefused
from . import shell
from .base import DirEntry, DirProbe, ExecResult, Transport, TransportError
from .confined import NotRegular, PathRefused, parts_of


class SudoRefused(TransportError):
    """sudo would not run a command as the account (no sudoers rule, unknown account)."""


@dataclass(frozen=True)
class Identity:
    """The account as sudo runs it on the node."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


#: what the account is: uid, gid, groups, home (from the passwd database, as the account)
WHOAMI_SCRIPT = 'id -u && id -g && id -G && getent passwd "$(id -un)" | cut -d: -f6'

#: $1: how many of the directories that follow must be made here and be the account's own (the
#: job's directory and the one above it, in a sticky directory others may write), then directories
#: made below them (work/, outputs/, a working directory). All 0700. Exit 4: one is not the account's.
CLAIM_SCRIPT = r"""
umask 077
n=$1
shift
i=0
for d in "$@"; do
  i=$((i + 1))
  if [ "$i" -le "$n" ]; then
    if [ -L "$d" ]; then echo "$d is a symlink" >&2; exit 4; fi
    mkdir -- "$d" 2>/dev/null
    if [ ! -d "$d" ] || [ -L "$d" ] || [ ! -O "$d" ]; then
      echo "$d exists and is not this account's own directory" >&2
      exit 4
    fi
  else
    mkdir -p -- "$d" || exit 1
  fi
  chmod 700 -- "$d" || exit 1
done
"""

#: stdin to $1 atomically, mode $2 (a temporary file beside it, then a rename)
WRITE_SCRIPT = r"""
umask 077
t="$1.tmp-$$"
if cat >"$t" && chmod "$2" -- "$t" && mv -f -- "$t" "$1"; then exit 0; fi
rm -f -- "$t"
exit 1
"""

#: $1 path, $2 offset, $3 size ("" for the rest): exit 3 when missing
READ_SCRIPT = r"""
[ -f "$1" ] || exit 3
if [ -n "$3" ]; then tail -c "+$(($2 + 1))" -- "$1" | head -c "$3"; else tail -c "+$(($2 + 1))" -- "$1"; fi
"""

#: $1 root, $2 offset, $3 size, then the path's components. Each component is checked not to be a
#: symlink, the file is opened once and the open file checked (regular, one name, the account's),
#: then read from that descriptor: what is read is what was checked. Output: ``S <size>`` and the
#: bytes. Exit 3 missing, 4 symlink (``L <component>``), 5 not a directory or file, 6 hard link,
#: 7 another account's file, 8 one the account cannot read.
CONFINED_READ_SCRIPT = r"""
set -f
root=$1 off=$2 size=$3
shift 3
p=$root
n=$#
i=0
for c in "$@"; do
  i=$((i + 1))
  p=$p/$c
  if [ -L "$p" ]; then echo "L $i"; exit 4; fi
  [ -e "$p" ] || exit 3
  if [ "$i" -lt "$n" ] && [ ! -d "$p" ]; then echo "D $i"; exit 5; fi
done
[ -f "$p" ] || { echo "N"; exit 5; }
[ -r "$p" ] || { echo "R"; exit 8; }
command exec 3<"$p" || { echo "R"; exit 8; }
set -- $(stat -L -c '%h %u %s %F' /dev/fd/3)
[ "$4" = regular ] || { echo "N"; exit 5; }
[ "$1" = 1 ] || { echo "H $1"; exit 6; }
[ "$2" = "$(id -u)" ] || { echo "U $2"; exit 7; }
echo "S $3"
tail -c "+$((off + 1))" <&3 | head -c "$size"
"""

#: $1 root, then components: each must be a directory and no symlink; then the listing as LIST_SCRIPT
CONFINED_LIST_SCRIPT = r"""
set -f
p=$1
shift
for c in "$@"; do
  p=$p/$c
  if [ -L "$p" ]; then echo "L $c"; exit 4; fi
  [ -e "$p" ] || exit 3
  [ -d "$p" ] || { echo "D $c"; exit 5; }
done
[ -d "$p" ] || exit 3
exec find "$p" -mindepth 1 -printf '%y %s %P\0'
"""


def sudoers_line(login: str, account: str) -> str:
    """The line that lets ``login`` start jobs as ``account`` (and nothing as anyone else)."""
    return f"{login} ALL=({account}) NOPASSWD: ALL"


class SudoTransport(Transport):
    """The account ``account`` on the machine ``base`` reaches, through ``sudo -n`` (never a password
    prompt: a missing rule fails at once). Commands only, no SFTP: files go through stdin/stdout."""

    name: ClassVar[str] = "sudo"

    def __init__(
        self, base: Transport, account: str, *, sudo: str = "sudo", login: str = "the executor's login"
    ) -> None:
        self.base = base
        self.account = account
        self.sudo = sudo
        #: the login account's name, for the sudoers line a refusal names
        self.login = login

    def _prefix(self) -> list[str]:
        return [self.sudo, "-n", "-u", self.account, "--"]

    def refused(self, result: ExecResult) -> SudoRefused | None:
        """sudo's own refusal (its messages start with ``sudo:``), as an error that names the account
        and the sudoers line the node's admin adds; None when the command itself ran."""
        err = result.stderr.decode("utf-8", "replace")
        lines = [line for line in err.splitlines() if line.startswith("sudo:")]
        if result.rc == 0 or not lines or result.rc != 1:
            return None
        why = "; ".join(line.removeprefix("sudo:").strip() for line in lines)
        return SudoRefused(
            f"the executor's login account {self.login!r} cannot run jobs as {self.account!r} on this node "
            f"(sudo -n -u {self.account}: {why}): the account must exist there and the node's admin adds "
            f"'{sudoers_line(self.login, self.account)}' to a file in /etc/sudoers.d (visudo -f)"
        )

    async def _sh(
        self, script: str, args: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = None
    ) -> ExecResult:
        result = await self.base.run(
            [*self._prefix(), "/bin/sh", "-c", script, "sh", *args], stdin=stdin, timeout=timeout
        )
        refusal = self.refused(result)
        if refusal is not None:
            raise refusal
        return result

    async def whoami(self) -> Identity:
        """The account's uid, groups and home; SudoRefused when sudo will not run as it."""
        result = (await self._sh(WHOAMI_SCRIPT, [])).check(f"asking who {self.account} is")
        lines = result.stdout.decode().splitlines()
        try:
            uid, gid, groups = int(lines[0]), int(lines[1]), tuple(int(g) for g in lines[2].split())
        except (IndexError, ValueError):
            raise TransportError(f"cannot read the identity of {self.account!r}: {lines!r}") from None
        home = lines[3] if len(lines) > 3 and lines[3].startswith("/") else "/"
        return Identity(self.account, uid, gid, tuple(dict.fromkeys([gid, *groups])), home)

    async def claim_dirs(self, own: Sequence[str], below: Sequence[str] = ()) -> None:
        """Make ``own`` (parents first) as the account and check each is its own directory, not a
        link or another account's (StartRefused otherwise: one was made there before the job's
        account could); then ``below`` inside them. Everything 0700."""
        result = await self._sh(CLAIM_SCRIPT, [str(len(own)), *own, *below])
        if result.rc == 4:
            raise StartRefused(result.stderr.decode("utf-8", "replace").strip())
        result.check(f"making the job's directory as {self.account}")

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
        if env or cwd is not None or inherit is not None:
            raise NotImplementedError("commands run as an account take no environment or directory here")
        result = await self.base.run([*self._prefix(), *argv], stdin=stdin, timeout=timeout)
        refusal = self.refused(result)
        if refusal is not None:
            raise refusal
        return result

    async def read_file(self, path: str, offset: int = 0, size: int | None = None) -> bytes:
        result = await self._sh(READ_SCRIPT, [path, str(max(0, offset)), "" if size is None else str(size)])
        if result.rc == 3:
            raise FileNotFoundError(path)
        return result.check(f"reading {path} as {self.account}").stdout

    async def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        (await self._sh(WRITE_SCRIPT, [path, f"{mode:o}"], stdin=data)).check(
            f"writing {path} as {self.account}"
        )

    async def mkdir(self, path: str) -> None:
        (await self._sh('umask 077 && mkdir -p -- "$1"', [path])).check(f"creating {path} as {self.account}")

    async def chmod(self, path: str, mode: int) -> None:
        (await self._sh('chmod "$1" -- "$2"', [f"{mode:o}", path])).check(f"chmod {path} as {self.account}")

    async def list_dir(self, path: str, *, depth: int | None = 1) -> list[DirEntry]:
        result = await self._sh(shell.LIST_SCRIPT, [path, "" if depth is None else str(depth)])
        if result.rc == 3:
            raise FileNotFoundError(path)
        return shell.parse_list(result.check(f"listing {path} as {self.account}").stdout)

    async def remove_tree(self, path: str) -> None:
        (await self._sh('rm -rf -- "$1"', [path])).check(f"removing {path} as {self.account}")

    async def read_confined(self, root: str, rel: str, offset: int, size: int) -> tuple[bytes, int]:
        parts = parts_of(rel)
        if not parts:
            raise PathRefused("the job's directory itself is not a file: list it instead")
        result = await self._sh(CONFINED_READ_SCRIPT, [root, str(max(0, offset)), str(max(0, size)), *parts])
        head, _, data = result.stdout.partition(b"\n")
        word, _, value = head.decode("utf-8", "replace").partition(" ")
        if result.rc == 3:
            raise FileNotFoundError(f"{root}/{rel}")
        if result.rc == 4:
            i = int(value) if value.isdigit() else len(parts)
            raise PathRefused(f"{'/'.join(parts[:i])} is a symlink; it is not followed")
        if result.rc == 5:
            raise NotRegular(
                f"{rel} is not a regular file" if word == "N" else f"{rel}: not a directory on the way"
            )
        if result.rc == 6:
            raise PathRefused(f"{rel} is a hard link ({value} names); it is not read")
        if result.rc == 7:
            raise PathRefused(f"{rel} belongs to uid {value}, not to the job's account; it is not read")
        if result.rc == 8:
            raise PathRefused(f"{rel} cannot be read by the job's account; it is not read")
        result.check(f"reading {rel} as {self.account}")
        if word != "S" or not value.isdigit():
            raise TransportError(f"reading {rel} as {self.account}: unexpected answer {head[:80]!r}")
        return data, int(value)

    async def list_confined(self, root: str, rel: str, limit: int) -> tuple[list[FileEntry], int]:
        parts = parts_of(rel)
        result = await self._sh(CONFINED_LIST_SCRIPT, [root, *parts])
        if result.rc == 3:
            raise FileNotFoundError(f"{root}/{rel}")
        if result.rc == 4:
            raise PathRefused(f"{rel} crosses a symlink; it is not followed")
        if result.rc == 5:
            raise NotRegular(f"{rel} is not a directory")
        entries = shell.parse_list(result.check(f"listing {rel} as {self.account}").stdout)
        prefix = "/".join(parts)
        out = [
            FileEntry(path="/".join(p for p in (prefix, e.name) if p), kind=e.kind, size=e.size)
            for e in sorted(entries, key=lambda e: e.name)
        ]
        return out[:limit], max(0, len(out) - limit)

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
        args = shell.probe_args(dirs, read, stat, max_read, alive_from)
        result = await self._sh(shell.PROBE_SCRIPT, args)
        if b"\nE\n" not in b"\n" + result.stdout:
            result.check(f"probing job directories as {self.account}")
            raise TransportError("the probe's output was cut short")
        return shell.parse_probe(result.stdout, dirs, read, stat, max_read)

    async def signal_group(self, pgid: int, sig: signal.Signals) -> bool:
        """``sig`` to the account's processes of group ``pgid`` (the job's; not the executor's wrapper)."""
        if pgid <= 1:
            raise ValueError(f"refusing to signal process group {pgid}")
        result = await self._sh(shell.KILL_SCRIPT, [sig.name.removeprefix("SIG"), str(pgid)])
        return result.rc == 0

    async def spawn_detached(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        inherit: Sequence[str] | None = None,
    ) -> None:
        raise NotImplementedError("a job is started by the executor's wrapper, which runs sudo itself")
