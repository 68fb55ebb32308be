"""A job's directory read on the job's terms: nothing outside it, no symlink followed, regular files only.

The job controls what is in its directory, so a path it offers is walked one component at a time.
On this machine every component is opened relative to the previous one with ``O_NOFOLLOW``
(``openat``), so a symlink swapped in between a check and a read is never followed; the file read
is the one that was checked. Remote transports do the same walk with ``lstat`` over SFTP.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as st
from collections.abc import Iterator

from jobwire.contracts.v1.files import FileEntry


class PathRefused(ValueError):
    """The path leaves the directory or crosses a symlink."""


class NotRegular(PathRefused):
    """The path names a directory, FIFO, socket or device where a regular file was asked for."""


def parts_of(rel: str) -> list[str]:
    """The components of a relative path; PathRefused for absolute paths, ``..`` and NUL bytes."""
    if "\0" in rel:
        raise PathRefused("the path contains a NUL byte")
    if rel.startswith("/"):
        raise PathRefused(f"{rel!r} is absolute; paths are relative to the job's directory")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise PathRefused(f"{rel!r} leaves the job's directory")
    return parts


def _kind(mode: int) -> str:
    if st.S_ISREG(mode):
        return "file"
    if st.S_ISDIR(mode):
        return "dir"
    if st.S_ISLNK(mode):
        return "link"
    return "other"


@contextlib.contextmanager
def _walk_open(root: str, parts: list[str], *, want_dir: bool) -> Iterator[int]:
    """An fd of ``root/parts`` opened without following any symlink below ``root``."""
    base = os.O_RDONLY | os.O_CLOEXEC
    fd = os.open(root, base | os.O_DIRECTORY)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = base | os.O_NOFOLLOW | os.O_NONBLOCK  # a FIFO must not block the open
            if not last or want_dir:
                flags |= os.O_DIRECTORY
            try:
                nfd = os.open(part, flags, dir_fd=fd)
            except OSError as e:
                if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                # O_NOFOLLOW refuses a symlink with ELOOP, or ENOTDIR when a directory was asked for
                here = "/".join(parts[: i + 1])
                if st.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode):
                    raise PathRefused(f"{here} is a symlink; it is not followed") from e
                raise NotRegular(f"{here} is not a directory") from e
            os.close(fd)
            fd = nfd
        yield fd
    finally:
        os.close(fd)


def read_local(root: str, rel: str, offset: int, size: int) -> tuple[bytes, int]:
    """Up to ``size`` bytes of the regular file ``root/rel`` from ``offset``, and its whole size."""
    parts = parts_of(rel)
    if not parts:
        raise PathRefused("the job's directory itself is not a file: list it instead")
    account = os.stat(root).st_uid
    with _walk_open(root, parts, want_dir=False) as fd:
        info = os.fstat(fd)
        if not st.S_ISREG(info.st_mode):
            raise NotRegular(f"{rel} is not a regular file")
        if info.st_nlink > 1:
            # A second name of a file the job may not own (``ln /etc/hostname outputs/``): the
            # executor reads with more rights than the job, so it never reads through one.
            raise PathRefused(f"{rel} is a hard link ({info.st_nlink} names); it is not read")
        if account != os.geteuid() and info.st_uid != account:
            # A directory given to a job's account (run-as) holds only that account's files; another
            # one's was moved in (from a world-writable directory) and is read for no one.
            raise PathRefused(f"{rel} belongs to uid {info.st_uid}, not to the job's account; it is not read")
        return os.pread(fd, max(0, size), max(0, offset)), info.st_size


def list_local(root: str, rel: str, limit: int) -> tuple[list[FileEntry], int]:
    """Entries below ``root/rel`` (recursively, symlinks listed but not entered), at most ``limit``;
    the second value counts the entries left out."""
    parts = parts_of(rel)
    prefix = "/".join(parts)
    out: list[FileEntry] = []
    left = 0
    with _walk_open(root, parts, want_dir=True) as fd:
        for dirpath, dirnames, filenames, dfd in os.fwalk(".", dir_fd=fd, follow_symlinks=False):
            dirnames.sort()
            here = "" if dirpath == "." else dirpath[2:]
            for name in sorted(dirnames + filenames):
                try:
                    info = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed while listed
                if len(out) >= limit:
                    left += 1
                    continue
                path = "/".join(p for p in (prefix, here, name) if p)
                kind = _kind(info.st_mode)
                size = info.st_size if kind == "file" else 0
                out.append(FileEntry(path=path, kind=kind, size=size, mtime=info.st_mtime))  # type: ignore[arg-type]
    return out, left
