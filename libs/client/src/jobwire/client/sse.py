"""An incremental server-sent events parser (the WHATWG rules), fed bytes as they arrive.

Written here rather than taken from a library so resumption is exact: ``last_id`` only moves when an
event is complete, so a connection dropped mid-event resumes before that event, never after it.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

_EOL = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class SseEvent:
    event: str
    data: str
    id: str | None


class SseParser:
    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._buffer = ""
        self._started = False
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        #: id of the last complete event; what ``Last-Event-ID`` should say on a reconnect
        self.last_id: str | None = None
        #: reconnection delay the server asked for, in milliseconds
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> list[SseEvent]:
        text = self._buffer + self._decoder.decode(chunk)
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        events: list[SseEvent] = []
        pos = 0
        while (m := _EOL.search(text, pos)) is not None:
            if m.group() == "\r" and m.end() == len(text):
                break  # may be the first half of "\r\n"; wait for the next chunk
            event = self._line(text[pos : m.start()])
            pos = m.end()
            if event is not None:
                events.append(event)
        self._buffer = text[pos:]
        return events

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # comment: a keep-alive
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\x00" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        self.last_id = self._id
        if not self._data and not self._event:
            return None
        event = SseEvent(event=self._event or "message", data="\n".join(self._data), id=self.last_id)
        self._data, self._event = [], ""
        return event
