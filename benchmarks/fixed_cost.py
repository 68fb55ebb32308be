"""The gateway's fixed cost per request (issue 11), not a test: ``wrk`` GETs on ``/health`` (no database,
public: the nearest to a bare route in the same process), ``/v1/jobs/counts`` and one job, with the gateway's
CPU per request read from the kernel's account of its process (utime + stime), as read_ab does.

CPU per request is steadier than a rate on a shared machine; the load average is recorded beside it.

    uv run --frozen python -m benchmarks.fixed_cost
    FIXED_PYSPY=/tmp/prof uv run --frozen python -m benchmarks.fixed_cost   # py-spy raw profiles per route
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import msgspec

from benchmarks.e2e import NOOP
from benchmarks.sched_profile import cpu_seconds
from jobwire.stack.processes import free_port
from jobwire.stack.stack import Stack, StackConfig

SECONDS = float(os.environ.get("FIXED_SECONDS", "8"))
CONNECTIONS = [int(c) for c in os.environ.get("FIXED_CONNECTIONS", "1,32").split(",")]
PYSPY = os.environ.get("FIXED_PYSPY")


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _wrk(url: str, headers: dict[str, str], connections: int) -> dict[str, float]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{round(SECONDS)}s", "--latency", "--timeout", "10s"]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": requests,
        "p50_ms": round(_ms(p50), 2),
        "p99_ms": round(_ms(p99), 2),
        "errors": int(non2xx.group(1)) if non2xx else 0,
    }


def point(pid: int, url: str, headers: dict[str, str], connections: int, label: str) -> dict[str, object]:
    spy = None
    if PYSPY:
        exe = shutil.which("py-spy") or "py-spy"
        out = f"{PYSPY}-{label}-{connections}.txt"
        argv = [exe, "record", "-p", str(pid), "-f", "raw", "-o", out, "-r", "200", "-d", str(round(SECONDS))]
        spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    load0 = os.getloadavg()[0]
    before = cpu_seconds(pid)
    figures = _wrk(url, headers, connections)
    used = cpu_seconds(pid) - before
    if spy is not None:
        spy.wait(timeout=120)
    return {
        "route": label,
        "connections": connections,
        **figures,
        "gateway_cpu_ms_per_request": round(used * 1000 / max(1, figures["requests"]), 3),
        "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)],
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="jobwire-fixed-") as tmp:
        stack = Stack(
            StackConfig(
                home=Path(tmp),
                api_port=free_port(),
                nats_port=free_port(),
                nats_monitor_port=free_port(),
                executors=[],
                env={"JOBWIRE_LOG_LEVEL": "WARNING"},
            )
        )
        stack.start()
        try:
            headers = {"Content-Type": "application/json", **stack.auth_headers}
            req = urllib.request.Request(  # noqa: S310 - our own URL
                stack.api_url + "/v1/jobs", data=msgspec.json.encode(NOOP), headers=headers, method="POST"
            )
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - our own URL
                job = json.loads(resp.read())["id"]
            pid = stack.services["gateway"].pid
            routes = {"health": "/health", "counts": "/v1/jobs/counts", "one_job": f"/v1/jobs/{job}"}
            _wrk(stack.api_url + "/v1/jobs/counts", stack.auth_headers, 4)  # warm up
            points = [
                point(pid, stack.api_url + path, stack.auth_headers, c, label)
                for c in CONNECTIONS
                for label, path in routes.items()
            ]
            print(json.dumps({"seconds": SECONDS, "points": points}, indent=1))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
