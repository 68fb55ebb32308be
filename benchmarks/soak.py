"""Memory under sustained load: gateway and scheduler RSS sampled once a second while submits arrive at a
fixed rate (half the measured maximum), so a leak shows as growth rather than as noise of a burst."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

from benchmarks import loadgen
from jobwire.stack.stack import Stack


def _tree(pid: int) -> list[int]:
    """The process and its descendants (uvicorn's workers are children of the gateway's process)."""
    out = [pid]
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                out += _tree(int(child))
    return out


def rss_bytes(pid: int) -> int:
    total = 0
    for p in _tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def summarise(samples: list[int]) -> dict[str, Any]:
    """Growth from the first tenth of the samples to the last tenth (means, so one GC pause is not a
    trend); flat when within 10%."""
    k = max(1, len(samples) // 10)
    first, last = sum(samples[:k]) / k, sum(samples[-k:]) / k
    growth = last / first - 1 if first else 0.0
    return {
        "mib_first": round(first / 2**20, 1),
        "mib_last": round(last / 2**20, 1),
        "mib_max": round(max(samples) / 2**20, 1),
        "growth": round(growth, 3),
        "flat": abs(growth) <= 0.10,
        "samples": len(samples),
    }


async def soak(stack: Stack, load: loadgen.Load, rate: float, seconds: float) -> dict[str, Any]:
    pids = {name: stack.services[name].pid for name in ("gateway", "scheduler")}
    samples: dict[str, list[int]] = {name: [] for name in pids}
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            for name, pid in pids.items():
                samples[name].append(rss_bytes(pid))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    sampler = asyncio.create_task(sample())
    t0 = time.perf_counter()
    load_figures = await loadgen.paced(load, rate, seconds)
    stop.set()
    await sampler
    return {
        "seconds": round(time.perf_counter() - t0, 1),
        "load": load_figures,
        **{name: summarise(s) for name, s in samples.items()},
    }
