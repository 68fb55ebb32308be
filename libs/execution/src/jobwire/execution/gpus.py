"""One GPU allocator for every backend: each GPU held by at most one run, chosen from what the node
offers; plus the ``nvidia-smi`` inventory the SSH nodes report.

A backend keeps the assignment durably its own way (an SSH attempt's ``gpus`` file, a container's
label) and gives it back with :meth:`GpuAllocator.hold` when it adopts the run after a restart.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

from jobwire.contracts.v1 import GpuInfo

from .executor import RunKey

#: how a backend names a GPU: an index (nvidia-smi) or the engine's device id (Docker)
Id = TypeVar("Id", int, str)

QUERY = [
    "--query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu",
    "--format=csv,noheader,nounits",
]
GPUS_FILE = "gpus"


class NoFreeGpu(RuntimeError):
    """Fewer free GPUs than asked right now (a stale run still holds one); the start is retried."""


def _number(raw: str) -> int | None:
    raw = raw.strip()
    try:
        return int(float(raw))
    except ValueError:
        return None  # "[N/A]", "[Not Supported]"


def parse_inventory(text: str) -> list[GpuInfo]:
    """Rows of ``index, uuid, name, memory.total, memory.used, utilization.gpu``; a name may hold commas."""
    gpus: list[GpuInfo] = []
    for row in csv.reader(io.StringIO(text), skipinitialspace=True):
        if not row or not row[0].strip():
            continue
        if len(row) < 6:
            raise ValueError(f"unexpected nvidia-smi line: {', '.join(row)!r}")
        index = int(row[0])
        name = ", ".join(row[2:-3]).strip()
        total, used, util = (_number(v) for v in row[-3:])
        gpus.append(
            GpuInfo(
                index=index,
                uuid=row[1].strip() or None,
                name=name or None,
                memory_total_mib=total,
                memory_used_mib=used,
                utilization_percent=util,
            )
        )
    return sorted(gpus, key=lambda g: g.index)


def encode_ids(ids: Iterable[int]) -> str:
    return ",".join(str(i) for i in ids)


def decode_ids(raw: bytes | str) -> list[int]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    return [int(p) for p in text.strip().split(",") if p.strip()]


def _shown(ids: Iterable[object]) -> str:
    return ",".join(str(i) for i in ids)


class GpuAllocator(Generic[Id]):
    """Which run holds each GPU; ``offered`` is passed in, since a node's inventory may change."""

    def __init__(self) -> None:
        self.busy: dict[Id, RunKey] = {}

    def assign(self, key: RunKey, count: int, offered: Sequence[Id], ids: Sequence[Id] = ()) -> list[Id]:
        """Take ``count`` distinct free GPUs of ``offered`` for ``key`` (exactly ``ids`` when given).

        ValueError when ``ids`` names a GPU not offered (the job can never run here); NoFreeGpu when
        too few are free now (a run still holds them: the start is tried again later). A repeated start
        of the same attempt gives back what its last try took first.
        """
        self.release(key)
        if ids:
            missing = [i for i in ids if i not in offered]
            if missing:
                has = _shown(offered) or "none"
                raise ValueError(f"GPU(s) {_shown(missing)} are not offered on this node (it has: {has})")
            taken = [i for i in ids if self.busy.get(i, key) != key]
            if taken:
                raise NoFreeGpu(f"GPU(s) {_shown(taken)} are in use")
            chosen = list(ids)
        else:
            free = [i for i in offered if i not in self.busy]
            if len(free) < count:
                raise NoFreeGpu(f"{count} GPU(s) asked, {len(free)} free of {len(offered)}")
            chosen = free[:count]
        self.hold(key, chosen)
        return chosen

    def hold(self, key: RunKey, ids: Iterable[Id]) -> None:
        for i in ids:
            self.busy[i] = key

    def held_by(self, key: RunKey) -> list[Id]:
        return sorted(i for i, k in self.busy.items() if k == key)

    def release(self, key: RunKey) -> None:
        for i in [i for i, k in self.busy.items() if k == key]:
            del self.busy[i]


class GpuSlots:
    """The GPUs an ``nvidia-smi`` inventory shows, as far as this node offers them, and who holds each
    (through one :class:`GpuAllocator`).

    ``wanted``: ``"all"``, a count (the first N by index) or the indexes to use.
    """

    def __init__(self, wanted: int | Sequence[int] | str) -> None:
        self.wanted = wanted
        self.inventory: list[GpuInfo] = []
        self.allocator: GpuAllocator[int] = GpuAllocator()

    @property
    def busy(self) -> dict[int, RunKey]:
        return self.allocator.busy

    def update(self, inventory: list[GpuInfo]) -> None:
        self.inventory = inventory

    def usable(self) -> list[int]:
        present = [g.index for g in self.inventory]
        if isinstance(self.wanted, str):
            return present
        if isinstance(self.wanted, int):
            return present[: max(0, self.wanted)]
        return [i for i in present if i in set(self.wanted)]

    def free(self) -> list[int]:
        return [i for i in self.usable() if i not in self.busy]

    def assign(self, key: RunKey, count: int, ids: Sequence[int] = ()) -> list[int]:
        """:meth:`GpuAllocator.assign` from the GPUs offered now."""
        return self.allocator.assign(key, count, self.usable(), ids)

    def hold(self, key: RunKey, ids: Iterable[int]) -> None:
        self.allocator.hold(key, ids)

    def release(self, key: RunKey) -> None:
        self.allocator.release(key)

    def infos(self) -> list[GpuInfo]:
        """The offered GPUs as the heartbeat shows them, each busy one with its job."""
        usable = set(self.usable())
        out: list[GpuInfo] = []
        for g in self.inventory:
            if g.index not in usable:
                continue
            holder = self.busy.get(g.index)
            out.append(
                GpuInfo(
                    index=g.index,
                    uuid=g.uuid,
                    name=g.name,
                    memory_total_mib=g.memory_total_mib,
                    memory_used_mib=g.memory_used_mib,
                    utilization_percent=g.utilization_percent,
                    job_id=holder[0] if holder else None,
                )
            )
        return out
