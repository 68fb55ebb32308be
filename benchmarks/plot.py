"""The throughput/latency curve of ``make bench`` as a PNG next to its JSON: requests/s and p50/p99 against
connections, jobwire on each database beside the bare route measured in the same run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt


def curve_png(doc: dict[str, Any], path: Path) -> None:
    series = {"bare route (ceiling)": doc["bare_route"]}
    series.update({f"jobwire, {k}": v["curve"] for k, v in doc["databases"].items() if "curve" in v})
    fig, (rate, latency) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, points in series.items():
        xs = [p["connections"] for p in points]
        line = rate.plot(xs, [p["requests_per_s"] for p in points], marker="o", label=label)[0]
        colour = line.get_color()
        latency.plot(
            xs, [p["latency_ms_p50"] for p in points], marker="o", color=colour, label=f"{label} p50"
        )
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
    load = doc["machine"].get("load_average_before", [])
    fig.suptitle(
        f"jobwire make bench: {doc['machine']['cores']} cores, {doc['load_generator'].split()[0]}, "
        f"load average before {load[0] if load else '?'}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
