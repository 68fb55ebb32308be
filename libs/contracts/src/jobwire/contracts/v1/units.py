"""Human-friendly sizes and durations ("4G", "90m") normalised to bytes and seconds."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtpe]?)(i?b?)\s*$", re.IGNORECASE)
_SIZE_POW = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}
_DURATION = re.compile(r"^\s*(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?\s*$")
_DURATION_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_size(value: int | str) -> int:
    """Bytes from an int or a string like ``"4G"``, ``"512Mi"``, ``"1.5GB"`` (powers of 1024)."""
    if isinstance(value, bool):
        raise ValueError("a size must be a number of bytes or a string like '4G'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    m = _SIZE.match(value)
    if not m:
        raise ValueError(f"{value!r} is not a size; use bytes or a string like '512M' or '4G'")
    number, unit = float(m.group(1)), m.group(2).lower()
    return int(number * 1024 ** _SIZE_POW[unit])


def parse_duration(value: float | int | str) -> float:
    """Seconds from a number, ``"90s"``/``"15m"``/``"2h"``/``"1d"``, or Slurm's ``[D-]HH:MM:SS``."""
    if isinstance(value, bool):
        raise ValueError("a duration must be seconds or a string like '15m' or '01:30:00'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    m = _DURATION_UNIT.match(value)
    if m:
        return float(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()]
    m = _DURATION.match(value)
    if m and (m.group(3) is not None or m.group(1) is not None):
        days, a, b, c = (int(g) if g else 0 for g in m.groups())
        hours, minutes, seconds = (a, b, c) if m.group(4) is not None else (0, a, b)
        return float(days * 86400 + hours * 3600 + minutes * 60 + seconds)
    if m:
        return float(m.group(2))
    raise ValueError(f"{value!r} is not a duration; use seconds, '15m', '2h' or 'HH:MM:SS'")


def format_hms(seconds: float) -> str:
    """``HH:MM:SS`` (with ``D-`` for days) as batch schedulers take walltimes."""
    total = max(0, round(seconds))
    days, rest = divmod(total, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{days}-{h:02d}:{m:02d}:{s:02d}" if days else f"{h:02d}:{m:02d}:{s:02d}"
