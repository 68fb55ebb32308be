"""One plugin registry: entry points checked against their base class, the way AiiDA loads
``aiida.schedulers``. Every kind of plugin (executors, batch systems, placement policies, transports)
is found, listed and refused the same way, whether it ships here or in another distribution.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TypeVar

T = TypeVar("T")

#: kind -> entry point group
GROUPS: dict[str, str] = {
    "executor backend": "jobwire.executors",
    "batch system": "jobwire.hpc_schedulers",
    "placement policy": "jobwire.placement",
    "transport": "jobwire.transports",
}


def names(kind: str) -> list[str]:
    """The names installed for ``kind`` (sorted)."""
    return sorted({ep.name for ep in entry_points(group=GROUPS[kind])})


def load(kind: str, name: str, base: type[T], builtin: dict[str, type[T]] | None = None) -> type[T]:
    """The class registered as ``name`` for ``kind``, checked to subclass ``base``.

    ``builtin`` answers first (a service's own defaults work before its package is installed).
    LookupError names what is installed; TypeError when the plugin is not a ``base``.
    """
    obj: object
    if builtin and name in builtin:
        obj = builtin[name]
    else:
        found = entry_points(group=GROUPS[kind], name=name)
        if not found:
            known = ", ".join(sorted({*names(kind), *(builtin or {})})) or "none"
            raise LookupError(f"no {kind} {name!r} is installed (known: {known})")
        obj = next(iter(found)).load()
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise TypeError(f"{kind} {name!r} is {obj!r}, not a subclass of {base.__qualname__}")
    return obj
