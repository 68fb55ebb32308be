"""Named inputs in the NATS object store (bucket ``jobwire_inputs``, objects ``<owner>/<name>``).

Inputs are per owner, like jobs: the owner is part of the object name (percent-encoded, see
``subjects.input_prefix``), so one user's ``config.yaml`` is never another's, and an executor finds a
job's inputs from the ``owner`` its RunJob carries. Admins may act on any owner's inputs.

Uploads stream the request body into the store chunk by chunk (nats-py reads a blocking reader in a
worker thread; each read hops back onto the event loop for the next piece of the body), so a dataset
never sits in the gateway's memory; a failed or oversized upload leaves the previous object intact.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import datetime
from urllib.parse import unquote

import msgspec
from nats.js.api import ObjectInfo
from nats.js.errors import NotFoundError
from nats.js.object_store import ObjectStore

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj

from ..artifacts.service import Download, object_chunks
from ..problems import InvalidParameter, NotFound, Problem
from ..resources import Resources


class InputNotFound(NotFound):
    slug, title = "input-not-found", "Input not found"


class InputTooLarge(Problem):
    status, slug, title = 413, "input-too-large", "Input too large"


class InputInfo(msgspec.Struct, kw_only=True):
    name: str
    owner: str
    size: int
    digest: str | None = None
    updated: datetime | None = None


class InputList(msgspec.Struct, kw_only=True):
    items: list[InputInfo]


def check_name(name: str) -> str:
    """The name, or a 400 problem naming the rule (nothing is stored for a bad name)."""
    try:
        return v1.check_input_name(name)
    except ValueError as e:
        raise InvalidParameter(str(e), extra={"path": "name"}) from None


def info_of(owner: str, name: str, info: ObjectInfo) -> InputInfo:
    updated = None
    if info.mtime:
        try:
            updated = datetime.fromisoformat(info.mtime)
        except ValueError:
            updated = None
    return InputInfo(name=name, owner=owner, size=info.size or 0, digest=info.digest or None, updated=updated)


async def find(store: ObjectStore, owner: str, name: str) -> ObjectInfo | None:
    try:
        info = await store.get_info(sj.input_object(owner, name))
    except NotFoundError:
        return None
    return None if info.deleted or info.is_link() else info


class _BodyReader(io.BufferedIOBase):
    """A blocking reader over the request's async body, for nats-py's ``put`` (called in a thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, body: AsyncIterator[bytes], limit: int) -> None:
        self._loop = loop
        self._body = body
        self._limit = limit
        self._left = b""
        self.total = 0
        self.too_large = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if not self._left:
            self._left = asyncio.run_coroutine_threadsafe(self._next(), self._loop).result()
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        return n

    async def _next(self) -> bytes:
        async for piece in self._body:
            if not piece:
                continue
            self.total += len(piece)
            if self.total > self._limit:
                self.too_large = True
                raise InputTooLarge(f"an input may be at most {self._limit} bytes")
            return piece
        return b""


async def put_input(
    res: Resources, owner: str, name: str, body: AsyncIterator[bytes], *, limit: int
) -> tuple[InputInfo, bool]:
    """Store the body as ``owner``'s input ``name``; returns its info and whether it is new."""
    store = await res.bus.inputs()
    existed = await find(store, owner, name) is not None
    reader = _BodyReader(asyncio.get_running_loop(), body, limit)
    info = await store.put(sj.input_object(owner, name), reader)
    return info_of(owner, name, info), not existed


async def open_input(res: Resources, owner: str, name: str) -> Download:
    store = await res.bus.inputs()
    info = await find(store, owner, name)
    if info is None or not info.nuid:
        raise InputNotFound(f"there is no input {name!r}")
    return Download(info=info, chunks=object_chunks(res, sj.INPUT_BUCKET, info))


async def delete_input(res: Resources, owner: str, name: str) -> None:
    store = await res.bus.inputs()
    if await find(store, owner, name) is None:
        raise InputNotFound(f"there is no input {name!r}")
    await store.delete(sj.input_object(owner, name))


async def list_inputs(res: Resources, owner: str | None, prefix: str) -> list[InputInfo]:
    """``owner``'s inputs (every owner's with None) whose name starts with ``prefix``, by owner and name."""
    store = await res.bus.inputs()
    try:
        infos = await store.list(ignore_deletes=True)
    except NotFoundError:
        return []
    want = sj.input_prefix(owner) if owner is not None else ""
    out: list[InputInfo] = []
    for info in infos:
        if info.deleted or not info.name.startswith(want):
            continue
        encoded, _, name = info.name.partition("/")
        if not name.startswith(prefix):
            continue
        out.append(info_of(unquote(encoded), name, info))
    out.sort(key=lambda i: (i.owner, i.name))
    return out
