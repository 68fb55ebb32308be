"""Reading a job's directory while it runs: the gateway asks the node's executor over NATS
request/reply (``jobwire.files.<node>``), one request per listing or per chunk of a file."""

from __future__ import annotations

from typing import Literal

import msgspec

#: the most bytes one reply carries (base64 in JSON: about 700 KB, under NATS's 1 MB default)
CHUNK_MAX = 512 * 1024
#: the most entries one listing returns (the rest are counted in ``FilesReply.truncated``)
LIST_MAX = 10_000


class FileEntry(msgspec.Struct, kw_only=True):
    """One entry below the attempt's directory; symlinks are shown, never followed."""

    path: str
    kind: Literal["file", "dir", "link", "other"]
    size: int = 0
    mtime: float | None = None


class FilesRequest(msgspec.Struct, kw_only=True):
    """List the attempt's directory below ``path`` (``read`` False) or read ``size`` bytes of the
    regular file ``path`` from ``offset``. ``path`` is relative to the attempt's directory."""

    job_id: str
    attempt: int
    path: str = ""
    read: bool = False
    offset: int = 0
    size: int = CHUNK_MAX


class FilesReply(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``status`` as HTTP would say it: 200, 400 (a path that leaves the directory or crosses a
    symlink), 404 (no such file or attempt here), 409 (not a regular file), 501 (backend cannot)."""

    status: int = 200
    error: str | None = None
    entries: list[FileEntry] | None = None
    truncated: int = 0
    #: the chunk read, and the file's whole size when it was read
    data: bytes | None = None
    size: int | None = None
