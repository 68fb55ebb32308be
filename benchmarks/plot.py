"""``make bench``'s PNG next to its JSON: the throughput/latency curve (requests/s and p50/p99 against
connections, jobwire on each database beside the bare route measured in the same run) and the memory
soak (each service's RSS over time, the warm-up shaded, and the scheduler's RSS on the million-job
database beside an empty one). A panel whose part failed or did not run says so instead of a plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.axes import Axes


def _missing(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, what, ha="center", va="center", fontsize=9, wrap=True, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _curves(doc: dict[str, Any], rate: Axes, latency: Axes) -> None:
    series: dict[str, list[dict[str, Any]]] = {}
    if isinstance(doc.get("bare_route"), list):
        series["bare route (ceiling)"] = doc["bare_route"]
    for kind, result in (doc.get("databases") or {}).items():
        if isinstance(result, dict) and isinstance(result.get("durable_floor"), list):
            series[f"durable-submit floor, {kind}"] = result["durable_floor"]
        if isinstance(result, dict) and isinstance(result.get("curve"), list):
            series[f"jobwire, {kind}"] = result["curve"]
    if not series:
        _missing(rate, "no curve was measured")
        _missing(latency, "no curve was measured")
        return
    for label, points in series.items():
        xs = [p["connections"] for p in points]
        line = rate.plot(xs, [p["requests_per_s"] for p in points], marker="o", label=label)[0]
        colour = line.get_color()
        p50 = [p["latency_ms_p50"] for p in points]
        latency.plot(xs, p50, marker="o", color=colour, label=f"{label} p50")
        latency.plot(
            xs,
            [p["latency_ms_p99"] for p in points],
            marker="^",
            linestyle="--",
            color=colour,
            label=f"{label} p99",
        )
    connections = sorted({p["connections"] for points in series.values() for p in points})
    for ax in (rate, latency):
        ax.set_xscale("log", base=2)
        ax.set_xticks(connections, [str(c) for c in connections])
        ax.set_xlabel("connections")
        ax.grid(True, which="both", alpha=0.3)
    rate.set_yscale("log")
    rate.set_ylabel("durable submits/s")
    rate.set_title("throughput")
    latency.set_yscale("log")
    latency.set_ylabel("ms")
    latency.set_title("latency (p50 solid, p99 dashed)")
    rate.legend(fontsize=8)
    latency.legend(fontsize=7)


def _memory(doc: dict[str, Any], ax: Axes) -> None:
    first: Any = next(iter((doc.get("databases") or {}).values()), {})
    mem = first.get("memory") if isinstance(first, dict) else None
    if not isinstance(mem, dict) or "failed" in mem:
        why = mem["failed"][:120] if isinstance(mem, dict) else "not run"
        _missing(ax, f"memory soak: {why}")
        return
    for name, figures in mem.items():
        if isinstance(figures, dict) and "series_s_mib" in figures:
            xs = [t / 60 for t, _ in figures["series_s_mib"]]
            verdict = "flat" if figures["flat"] else "NOT flat"
            ax.plot(
                xs,
                [v for _, v in figures["series_s_mib"]],
                marker=".",
                label=f"{name} ({figures['worst_drift']:+.1%}, {verdict})",
            )
    ax.axvspan(0, mem["warmup_s"] / 60, color="grey", alpha=0.15, label="warm-up")
    scale = doc.get("scale_memory")
    title = f"RSS, {mem['seconds'] / 60:.1f} min at {mem['load']['offered_per_s']}/s"
    if isinstance(scale, dict) and "stored_jobs" in scale:
        empty, ended = scale["empty_database"]["rss_mib"], scale["ended_database"]["rss_mib"]
        full, active = scale["seeded_database"]["rss_mib"], scale["active_jobs"]["jobs_active"]
        stored = scale["ended_database"]["jobs_stored"]
        label = f"scheduler, {active:,} of them active: {full} MiB"
        ax.axhline(full, color="black", linestyle=":", label=label)
        ax.axhline(ended, color="black", linestyle="--", label=f"scheduler, {stored:,} ended: {ended} MiB")
        ax.axhline(empty, color="black", linestyle="-.", label=f"scheduler, empty database: {empty} MiB")
    ax.set_xlabel("minutes")
    ax.set_ylabel("MiB")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)


def bench_png(doc: dict[str, Any], path: Path) -> None:
    fig, (rate, latency, memory) = plt.subplots(1, 3, figsize=(16, 4.6))
    _curves(doc, rate, latency)
    _memory(doc, memory)
    load = doc["machine"].get("load_average_before", [])
    after = doc["machine"].get("load_average_after", [])
    fig.suptitle(
        f"jobwire make bench {doc.get('started_at', '')}: {doc['machine']['cores']} cores, "
        f"{doc['load_generator'].split()[0]}, load average {load[0] if load else '?'} before, "
        f"{after[0] if after else '?'} after",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
