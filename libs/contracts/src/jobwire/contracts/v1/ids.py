"""Sortable job ids: UUIDv7 (RFC 9562), newest compares greatest as a string.

Ids made by one process are strictly increasing, even within one millisecond (the 12-bit
``rand_a`` field counts, RFC 9562 method 1), so submission order is id order.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_seq = 0


def new_job_id() -> str:
    global _last_ms, _seq
    rand = int.from_bytes(os.urandom(10), "big")  # one read: 62 bits of rand_b, 11 for a new counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _seq += 1
            if _seq > 0xFFF:  # counter spent: borrow the next millisecond
                ms += 1
                _seq = 0
        else:
            _seq = rand >> 64 & 0x7FF  # random start, half the room left
        _last_ms = ms
        seq = _seq
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | seq << 64 | 0b10 << 62 | rand & ((1 << 62) - 1)
    # formatted here, not by ``str(uuid.UUID(int=...))``: half of this function's cost on every submit
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_job_id(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def array_task_id(array_id: str, index: int) -> str:
    """The id of task ``index`` of an array: the array id's time and counter, with the index as its
    low bits. Made the same way every time (a redelivered batch makes the same task), and sorted
    right after the array in submission order, so a task keeps its owner's order like a job."""
    top = uuid.UUID(array_id).int >> 64 << 64
    return str(uuid.UUID(int=top | 0b10 << 62 | index))
