"""SQLite statements run in the caller's event-loop thread instead of aiosqlite's worker thread.

aiosqlite hands every call (cursor, execute, fetch, close: three or four per statement) to a thread and
back through the event loop's self-pipe. For the scheduler, the one writer, whose statements on a local
file take microseconds, those hand-offs were most of a batch's time: on a loaded 2-core machine each one
waits for the other thread to be scheduled (a one-row batch of about ten statements took 20-50 ms).
Here the same aiosqlite ``Connection`` runs each call at once and returns a finished future, so
SQLAlchemy's async engine works unchanged and a statement costs what sqlite3 costs.

The price: a statement blocks the loop while it runs. That is right for a process whose loop exists to
run its batches (the scheduler), wrong for one that serves many readers with unbounded queries (the
gateway keeps aiosqlite). A lock held by another process makes ``busy_timeout`` block the loop too. And
a process must write through one connection at a time: a second writer in the same loop would wait on
``busy_timeout`` for a lock the first cannot release while the loop is blocked (the scheduler writes only
through its batch connection; its other sessions read, which WAL never blocks).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any

import aiosqlite


class _RunNow:
    """Stands in for aiosqlite's queue to its worker thread: runs each call when it is queued."""

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as e:  # handed to the awaiting caller, as the worker thread does
            if future is not None and not future.done():
                future.set_exception(e)
            return
        if future is not None and not future.done():
            future.set_result(result)


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection without its thread: every call runs in the event loop's thread."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], iter_chunk_size: int = 64) -> None:
        super().__init__(connector, iter_chunk_size)
        self._tx = _RunNow()  # type: ignore[assignment]

    def __await__(self) -> Any:
        return self._connect().__await__()  # no worker thread to start


def connect(database: str, **kwargs: Any) -> InlineConnection:
    """What ``aiosqlite.connect`` makes, run inline (``check_same_thread`` holds: one thread uses it)."""
    kwargs.pop("check_same_thread", None)
    return InlineConnection(lambda: sqlite3.connect(database, **kwargs))
