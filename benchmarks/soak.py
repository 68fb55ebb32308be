"""Memory under sustained load: gateway, scheduler, executor and NATS RSS sampled every
``BENCH_SOAK_SAMPLE_S`` (10 s) while submits arrive at a fixed rate, so a leak shows as growth rather than
as the noise of a burst. A service passes when every sample after the warm-up stays within 10% of the
first sample after it (a service that is still filling its caches during the warm-up is not a leak)."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks import loadgen
from jobwire.stack.stack import Stack

#: allowed drift of every post-warm-up sample from the first one (issue 11: "flat within 10%")
FLAT = 0.10


def _tree(pid: int) -> list[int]:
    """The process and its descendants (uvicorn's workers are children of the gateway's process)."""
    out = [pid]
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                out += _tree(int(child))
    return out


def rss_bytes(pid: int, children: bool = True) -> int:
    """Resident memory of ``pid`` (and its descendants: the gateway's workers; not an executor's jobs)."""
    total = 0
    for p in _tree(pid) if children else [pid]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def summarise(samples: list[tuple[float, int]], warmup_s: float) -> dict[str, Any]:
    """Drift of the samples after ``warmup_s`` from the first of them: the largest either way, and the
    last; flat when every one is within :data:`FLAT`. The whole series is kept for the plot."""
    after = [rss for t, rss in samples if t >= warmup_s] or [rss for _, rss in samples[-1:]]
    base = after[0] if after else 0
    mib = 2**20

    def drift(v: int) -> float:
        return v / base - 1 if base else 0.0

    worst = max((drift(v) for v in after), key=abs, default=0.0)
    return {
        "mib_after_warmup": round(base / mib, 1),
        "mib_last": round(after[-1] / mib, 1) if after else None,
        "mib_max": round(max(after) / mib, 1) if after else None,
        "mib_median": round(statistics.median(after) / mib, 1) if after else None,
        "growth": round(drift(after[-1]), 3) if after else 0.0,
        "worst_drift": round(worst, 3),
        "flat": abs(worst) <= FLAT,
        "samples": len(samples),
        "series_s_mib": [[round(t, 1), round(v / mib, 1)] for t, v in samples],
    }


async def _active(stack: Stack) -> dict[str, int]:
    """Jobs not yet finished, by state: shows whether the stack kept up with the offered rate."""
    async with httpx.AsyncClient(base_url=stack.api_url, headers=stack.auth_headers, timeout=30) as c:
        counts = (await c.get("/v1/jobs/counts")).json()["by_state"]
    return {s: int(counts.get(s, 0)) for s in ("queued", "starting", "running")}


async def soak(
    stack: Stack, load: loadgen.Load, rate: float, seconds: float, every: float = 10.0, warmup: float = 60.0
) -> dict[str, Any]:
    """``rate`` submits/s for ``seconds``; RSS of each service every ``every`` seconds."""
    pids = {name: proc.pid for name, proc in stack.services.items() if proc.alive()}
    if stack.nats is not None and stack.nats.process.alive():
        pids["nats"] = stack.nats.process.pid
    samples: dict[str, list[tuple[float, int]]] = {name: [] for name in pids}
    active: list[tuple[float, int]] = []
    stop = asyncio.Event()
    t0 = time.perf_counter()

    async def sample() -> None:
        while not stop.is_set():
            at = time.perf_counter() - t0
            for name, pid in pids.items():
                # an executor's own RSS, not its jobs' (they come and go with the load)
                samples[name].append((at, rss_bytes(pid, children=not name.startswith("executor"))))
            with contextlib.suppress(Exception):
                active.append((at, sum((await _active(stack)).values())))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)

    sampler = asyncio.create_task(sample())
    load_figures = await loadgen.paced(load, rate, seconds)
    stop.set()
    await sampler
    warm = min(warmup, seconds / 5)
    return {
        "seconds": round(time.perf_counter() - t0, 1),
        "sample_every_s": every,
        "warmup_s": warm,
        "flat_within": FLAT,
        "load": load_figures,
        "unfinished_jobs_series": [[round(t, 1), n] for t, n in active],
        **{name: summarise(s, warm) for name, s in samples.items()},
    }
