"""Upload a finished run's output files to the object store, streamed through the backend."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.js.object_store import ObjectStore

from jobwire.contracts.v1 import Artifact
from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime.metrics import ARTIFACT_BYTES

from .executor import Executor, RunHandle
from .transport.confined import PathRefused

log = logging.getLogger(__name__)
READ_SIZE = 1024 * 1024


class _BackendReader(io.BufferedIOBase):
    """A blocking reader over the backend's async ``read_output``.

    The object store calls ``readinto`` from a worker thread, so each call hops back onto the event
    loop; the file is never held in memory whole, and a remote backend streams it too.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, read: Callable[[int, int], Awaitable[bytes]]) -> None:
        self._loop = loop
        self._read = read
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        want = min(len(buffer), READ_SIZE)

        async def read() -> bytes:
            return await self._read(self._offset, want)

        data = asyncio.run_coroutine_threadsafe(read(), self._loop).result()
        buffer[: len(data)] = data
        self._offset += len(data)
        return len(data)


@dataclass
class Uploaded:
    artifacts: list[Artifact]
    skipped: list[str]
    #: outputs not read: a symlink or hard link, or a path swapped during the upload
    refused: list[str] = dataclasses.field(default_factory=list)


async def upload_outputs(
    executor: Executor, handle: RunHandle, bucket: Callable[[], Awaitable[ObjectStore]], max_bytes: int
) -> Uploaded:
    """Put every output file as ``<job_id>/<name>``, in name order, until ``max_bytes`` in total; a
    gang's rank r > 0 puts its own as ``rank<r>/<name>`` (its ranks' outputs often share names: a
    checkpoint each), so no rank overwrites another's.

    ``bucket`` is only opened when there is something to upload.
    """
    loop = asyncio.get_running_loop()
    job_id = handle.run.job_id
    gang = handle.run.gang
    prefix = f"rank{gang.rank}/" if gang is not None and gang.rank else ""
    done: list[Artifact] = []
    skipped: list[str] = []
    refused: list[str] = []
    total = 0
    outputs = sorted(await executor.list_outputs(handle), key=lambda f: f.name)
    store = await bucket() if outputs else None
    for f in outputs:
        assert store is not None
        if total + f.size > max_bytes:
            skipped.append(f.name)
            continue

        def reader(name: str = f.name) -> _BackendReader:
            return _BackendReader(loop, lambda off, n: executor.read_output(handle, name, off, n))

        obj = sj.artifact_object(job_id, prefix + f.name)
        try:
            await executor.read_output(handle, f.name, 0, 0)  # a link or swapped path: refused here
            info = await store.put(obj, reader())
        except PathRefused as e:  # or swapped in during the upload
            log.warning("%s attempt %d: output not uploaded: %s", job_id, handle.run.attempt, e)
            refused.append(f.name)
            with contextlib.suppress(Exception):
                await store.delete(obj)
            continue
        size = info.size or 0
        total += size
        ARTIFACT_BYTES.inc(size)
        done.append(Artifact(name=prefix + f.name, size=size, digest=info.digest))
    if skipped:
        log.warning(
            "%s attempt %d: %d output file(s) over the %d-byte artifact cap were not uploaded: %s",
            job_id,
            handle.run.attempt,
            len(skipped),
            max_bytes,
            ", ".join(skipped[:20]),
        )
    return Uploaded(done, skipped, refused)
