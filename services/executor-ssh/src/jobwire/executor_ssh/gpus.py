"""GPU inventory from ``nvidia-smi`` and one-job-per-GPU slot assignment.

The assignment lives in memory and in each attempt's ``gpus`` file, so a restarted executor
knows which GPUs its adopted runs hold.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from jobwire.contracts.v1 import GpuInfo
from jobwire.execution import RunKey

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


class GpuSlots:
    """Which GPUs this node offers and which run holds each.

    ``wanted``: ``"all"``, a count (the first N by index) or the indexes to use.
    """

    def __init__(self, wanted: int | Sequence[int] | str) -> None:
        self.wanted = wanted
        self.inventory: list[GpuInfo] = []
        self.busy: dict[int, RunKey] = {}

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
        """Take ``count`` distinct free GPUs for ``key`` (exactly ``ids`` when given)."""
        if ids:
            missing = [i for i in ids if i not in self.usable()]
            if missing:
                raise ValueError(f"GPU(s) {encode_ids(missing)} are not offered on this node")
            taken = [i for i in ids if i in self.busy]
            if taken:
                raise NoFreeGpu(f"GPU(s) {encode_ids(taken)} are in use")
            chosen = list(ids)
        else:
            free = self.free()
            if len(free) < count:
                raise NoFreeGpu(f"{count} GPU(s) asked, {len(free)} free of {len(self.usable())}")
            chosen = free[:count]
        self.hold(key, chosen)
        return chosen

    def hold(self, key: RunKey, ids: Iterable[int]) -> None:
        for i in ids:
            self.busy[i] = key

    def release(self, key: RunKey) -> None:
        for i in [i for i, k in self.busy.items() if k == key]:
            del self.busy[i]

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
