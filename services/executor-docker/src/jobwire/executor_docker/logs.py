"""Copy a container's stdout and stderr from the engine into its job directory, as they come.

One thread per stream follows ``GET /containers/{id}/logs?follow=1&timestamps=1``. Each frame is
appended to ``logs/<stream>``, then ``<end offset> <timestamp>`` to an index; the index is the
truth after a crash: the data file is cut back to its last entry and following resumes after that
timestamp, so a restarted executor neither loses nor repeats a line. The run loop only ever sees
sizes that are in the index.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from datetime import UTC, datetime
from typing import Any

from docker import APIClient

from jobwire.execution.attempt import AttemptDir
from jobwire.execution.attempt.layout import LOG_TRUNCATED

log = logging.getLogger(__name__)
STREAMS = ("stdout", "stderr")


def parse_ts(raw: bytes) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 timestamp as the engine writes it."""
    try:
        text = raw.decode()
        base, _, rest = text.partition(".")
        frac = "".join(ch for ch in rest if ch.isdigit())
        tail = rest[len(frac) :] if rest else base[19:]
        when = datetime.fromisoformat(base[:19]).replace(tzinfo=UTC)
        if tail not in ("Z", "+00:00", ""):
            when = datetime.fromisoformat(base[:19] + tail)
        return int(when.timestamp()) * 1_000_000_000 + int((frac + "000000000")[:9])
    except (ValueError, UnicodeDecodeError):
        return None


class LogFile:
    """One stream's data file and index; ``size`` counts only indexed bytes.

    With a ``limit`` (bytes, 0 for none) the file keeps that much, then one marker line, and what the
    container writes after it is dropped, as the process wrapper does for the other backends.
    """

    def __init__(self, data: str, index: str, limit: int = 0) -> None:
        self.data_path = data
        self.index_path = index
        self.limit = limit
        self.size, self.last_ts = self._recover()
        note = LOG_TRUNCATED.format(stream=os.path.basename(data), limit=limit)
        self.marker = f"\n{note}\n".encode()
        self.capped = bool(limit) and self.size > limit

    def _recover(self) -> tuple[int, int]:
        size, ts = 0, 0
        try:
            with open(self.index_path, "rb") as f:
                for line in f:
                    if not line.endswith(b"\n"):
                        break  # torn last write
                    end, stamp = line.split()
                    size, ts = int(end), int(stamp)
        except FileNotFoundError:
            pass
        if os.path.exists(self.data_path) and os.path.getsize(self.data_path) > size:
            os.truncate(self.data_path, size)
        return size, ts

    def append(self, data: bytes, ts: int) -> None:
        if self.limit:
            if self.capped:
                self.last_ts = ts
                return
            if self.size + len(data) > self.limit:
                data = data[: self.limit - self.size] + self.marker
                self.capped = True
        with open(self.data_path, "ab") as f:
            f.write(data)
        with open(self.index_path, "ab") as f:
            f.write(b"%d %d\n" % (self.size + len(data), ts))
        self.size += len(data)
        self.last_ts = ts


class Follower:
    """Both streams of one container; ``done`` once the engine closed them (the container ended)."""

    def __init__(self, api: APIClient, container_id: str, d: AttemptDir, limit: int = 0) -> None:
        self.api = api
        self.container_id = container_id
        self.files = {s: LogFile(d.log(s), d.own(f"{s}.idx"), limit) for s in STREAMS}
        self._streams: dict[str, Any] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._ok: dict[str, bool] = {}
        self._closed = False

    def start(self) -> Follower:
        for s in STREAMS:
            t = threading.Thread(target=self._copy, args=(s,), name=f"logs {self.container_id[:12]} {s}")
            t.daemon = True
            self._threads[s] = t
            t.start()
        return self

    @property
    def sizes(self) -> dict[str, int]:
        return {s: f.size for s, f in self.files.items()}

    @property
    def done(self) -> bool:
        return all(not t.is_alive() for t in self._threads.values())

    @property
    def failed(self) -> bool:
        """A stream stopped without reaching the end (connection lost): follow again."""
        return self.done and not all(self._ok.get(s) for s in STREAMS)

    def _copy(self, stream: str) -> None:
        f = self.files[stream]
        resume = f.last_ts
        # A float cannot hold nanoseconds: ask from a little earlier and drop what was copied.
        since = (resume - 1_000_000) / 1e9 if resume else None
        try:
            frames = self.api.logs(
                self.container_id,
                stdout=stream == "stdout",
                stderr=stream == "stderr",
                stream=True,
                follow=True,
                timestamps=True,
                since=since,
            )
            self._streams[stream] = frames
            for frame in frames:
                stamp, _, data = frame.partition(b" ")
                ts = parse_ts(stamp)
                if ts is None:
                    ts, data = f.last_ts, frame
                elif ts <= resume:
                    continue
                if data:
                    f.append(data, ts)
            self._ok[stream] = not self._closed
        except Exception as e:
            if not self._closed:
                log.warning("following %s of container %s stopped: %s", stream, self.container_id[:12], e)
            self._ok[stream] = False

    def close(self) -> None:
        """Stop following (the executor stops; the next one resumes from the index)."""
        self._closed = True
        for frames in list(self._streams.values()):
            with contextlib.suppress(Exception):  # best effort on a stream that may be gone
                frames.close()
