"""``LocalExecutor``: detached processes on this machine (entry point ``jobwire.executors: local``)."""

from __future__ import annotations

import os

from jobwire.contracts.v1 import NodeCapacity, parse_size

from .runner import ProcessExecutor
from .settings import ExecutorSettings
from .transport.local import LocalTransport


def memory_total(meminfo: str = "/proc/meminfo") -> int | None:
    """Bytes of RAM this machine has (None where /proc/meminfo is missing)."""
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class LocalExecutor(ProcessExecutor):
    """The runner over LocalTransport; capacity defaults to what this machine has."""

    backend = "local"

    def __init__(self, settings: ExecutorSettings) -> None:
        super().__init__(settings, LocalTransport(), os.path.abspath(settings.root_dir()))
        cpus = os.cpu_count() or 1
        self._capacity = NodeCapacity(
            slots=settings.slots or cpus,
            cpus=settings.cpus or float(cpus),
            memory=parse_size(settings.memory) if settings.memory else memory_total(),
            gpus=settings.gpus or 0,
        )

    def capacity(self) -> NodeCapacity:
        return self._capacity
