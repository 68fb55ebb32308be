"""Validation and unit parsing shared by the adapters: what reaches a directive or argv is checked."""

from __future__ import annotations

import re

from jobwire.contracts.v1.spec import BATCH_EXPR

from ..executor import StartRefused

#: names of partitions, queues, accounts, QOS, PEs, GRES and constraint expressions: no spaces,
#: quotes, ``$``, backticks, ``;``, ``#`` or newlines, so a value can never end its directive line
#: (the rule the options' schema gives the gateway, checked again here for the node's own settings)
TOKEN = re.compile(BATCH_EXPR)
#: paths written into directives (output files): the scheduler does not shell-parse them, but a
#: space or newline would still split or end the line
PATH = re.compile(r"^/[A-Za-z0-9_./+@=-]{0,4095}$(?!\n)")
_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}


def check_token(what: str, value: str) -> str:
    """``value`` if it is a plain scheduler name; StartRefused otherwise."""
    if not TOKEN.match(value):
        raise StartRefused(
            f"{what} {value!r} is not a plain name (letters, digits and _.:,@+=/&|()!*[]%- only)"
        )
    return value


def check_path(what: str, value: str) -> str:
    if not PATH.fullmatch(value) or "/../" in value + "/":
        raise StartRefused(f"{what} {value!r} is not a plain absolute path")
    return value


def parse_size_units(text: str) -> int | None:
    """``3088K``, ``1.61M``, ``4.809KB``, ``0.000B`` → bytes (binary units); None when empty."""
    t = text.strip()
    if not t:
        return None
    m = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*([KMGTP]?)(?:i?B)?", t, re.IGNORECASE)
    if not m:
        return None
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def parse_duration_hms(text: str) -> float | None:
    """SLURM/Torque times (``D-HH:MM:SS``, ``HH:MM:SS``, ``MM:SS.mmm``, ``SS``) or SGE's ``0.018s``."""
    t = text.strip()
    if not t or t in ("INVALID", "UNLIMITED", "Partition_Limit"):
        return None
    if t.endswith("s") and re.fullmatch(r"[0-9.]+s", t):
        return float(t[:-1])
    days = 0
    if "-" in t:
        d, t = t.split("-", 1)
        days = int(d)
    try:
        parts = [float(p) for p in t.split(":")]
    except ValueError:
        return None
    total = 0.0
    for p in parts:
        total = total * 60 + p
    return days * 86400 + total


def walltime_hms(seconds: float) -> str:
    """``HH:MM:SS`` for directives, rounded up to whole seconds (at least one)."""
    s = max(1, int(-(-seconds // 1)))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def memory_mb(size: int) -> int:
    """Bytes → whole MiB, rounded up (schedulers take ``--mem`` in MB)."""
    return max(1, -(-size // (1024 * 1024)))


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,255}$(?!\n)")


def check_env_name(name: str) -> str:
    if not _ENV_NAME.match(name):
        raise StartRefused(f"{name!r} is not an environment variable name")
    return name
