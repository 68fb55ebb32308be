"""Transports: how a runner reaches the machine its jobs run on (``jobwire.transports`` entry points)."""

from __future__ import annotations

from importlib.metadata import entry_points

from .base import (
    DirEntry,
    DirProbe,
    ExecResult,
    FileStat,
    Transport,
    TransportError,
    TransportTimeout,
)

__all__ = [
    "DirEntry",
    "DirProbe",
    "ExecResult",
    "FileStat",
    "Transport",
    "TransportError",
    "TransportTimeout",
    "load_transport",
]

TRANSPORTS_GROUP = "jobwire.transports"


def load_transport(name: str) -> type[Transport]:
    """The Transport class registered under ``name``, checked against the base class."""
    found = entry_points(group=TRANSPORTS_GROUP, name=name)
    if not found:
        known = ", ".join(sorted(ep.name for ep in entry_points(group=TRANSPORTS_GROUP))) or "none"
        raise LookupError(f"no transport {name!r} is installed (known: {known})")
    obj = next(iter(found)).load()
    if not (isinstance(obj, type) and issubclass(obj, Transport)):
        raise TypeError(f"transport {name!r} is {obj!r}, not a subclass of {Transport.__qualname__}")
    return obj
