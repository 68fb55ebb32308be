"""Stdout/stderr bytes → ``LogChunk`` messages, resumable and de-duplicated across restarts.

Chunks end on UTF-8 character boundaries, so each decodes on its own and a re-sent chunk is
byte-for-byte the first one; an incomplete character at the end waits for the rest (or the end of
the run). Message id ``<job>:<attempt>:<stream>:<offset>``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from jobwire.contracts.v1 import LogChunk, codec
from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime.metrics import LOG_BYTES

from .journal import LogCursor

MAX_MESSAGE = 64 * 1024
#: room for the job id, attempt and field names around the data
MAX_RAW = MAX_MESSAGE - 512

Publish = Callable[[str, bytes, str], Awaitable[None]]
Read = Callable[[int, int], Awaitable[bytes]]
Save = Callable[[], Awaitable[None]]


def utf8_cut(data: bytes) -> int:
    """Length of the longest prefix that does not end inside a UTF-8 sequence."""
    n = len(data)
    for back in range(1, min(4, n) + 1):
        b = data[n - back]
        if b & 0xC0 == 0x80:
            continue
        if 0xC2 <= b <= 0xF4:
            need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            return n - back if need > back else n
        return n  # ASCII, or a byte no valid sequence starts with: nothing to wait for
    return n


def chunk_message(job_id: str, attempt: int, stream: str, offset: int, data: bytes) -> bytes:
    chunk = LogChunk(
        job_id=job_id, attempt=attempt, stream=stream, offset=offset, data=data.decode("utf-8", "replace")
    )
    return codec.encode(chunk)


def msg_id(job_id: str, attempt: int, stream: str, offset: int) -> str:
    return sj.attempt_msg_id(job_id, attempt, stream, offset)


class StreamPump:
    """Publishes one stream of one attempt; ``cursor`` lives in the attempt's journal."""

    def __init__(self, job_id: str, attempt: int, stream: str, cursor: LogCursor) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.stream = stream
        self.cursor = cursor
        self.subject = sj.log_subject(job_id, stream)

    async def pump(
        self, size: int, read: Read, publish: Publish, save: Save, *, final: bool, limit: int
    ) -> int:
        """Publish up to ``limit`` chunks of the ``size`` bytes available; returns how many were sent.

        ``final`` flushes an incomplete last character (the run is over, nothing more will come).
        """
        sent = 0
        c = self.cursor
        while sent < limit:
            if c.pending > c.offset:
                data = await read(c.offset, c.pending - c.offset)
                if len(data) < c.pending - c.offset:
                    raise RuntimeError(f"{self.stream} of {self.job_id} shrank below offset {c.pending}")
            elif size > c.offset:
                data = await read(c.offset, min(size - c.offset, MAX_RAW))
                if not data:
                    break
                data = self._fit(data, final=final and c.offset + len(data) >= size)
                if not data:
                    break
                c.pending = c.offset + len(data)
                await save()
            else:
                break
            payload = chunk_message(self.job_id, self.attempt, self.stream, c.offset, data)
            await publish(self.subject, payload, msg_id(self.job_id, self.attempt, self.stream, c.offset))
            LOG_BYTES.labels(stream=self.stream).inc(len(data))
            c.offset = c.pending
            sent += 1
        return sent

    def _fit(self, data: bytes, *, final: bool) -> bytes:
        """Cut at a character boundary and shrink until the JSON message fits in 64 KiB."""
        cut = len(data) if final else utf8_cut(data)
        data = data[:cut]
        while data:
            size = len(chunk_message(self.job_id, self.attempt, self.stream, self.cursor.offset, data))
            if size <= MAX_MESSAGE:
                return data
            keep = max(1, len(data) * MAX_RAW // size - 64)
            data = data[: utf8_cut(data[:keep]) or keep]
        return data

    async def eof(self, publish: Publish) -> None:
        """The closing chunk; its id (the final offset) never collides with a data chunk's."""
        offset = self.cursor.offset
        chunk = LogChunk(
            job_id=self.job_id, attempt=self.attempt, stream=self.stream, offset=offset, eof=True
        )
        await publish(
            self.subject, codec.encode(chunk), msg_id(self.job_id, self.attempt, self.stream, offset)
        )
