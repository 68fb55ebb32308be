"""Prometheus metrics: every series jobwire exports, defined once, and the separate metrics port.

Each process (gateway, scheduler, each executor) counts what it does into the default registry. The
scheduler and executors serve it on their own ``JOBWIRE_METRICS_PORT`` (no token: bind it where only the
monitoring network reaches); the gateway serves it at ``GET /metrics`` behind the ``metrics:read`` scope,
plus the fleet view it reads from the database at scrape time (jobs by state, nodes, queues, GPUs).
Names follow Prometheus conventions: a ``jobwire_`` prefix, ``_total`` counters, ``_seconds``, base units.
Each process exports only the series it counts (``registry(role)``): every series is defined in every
process, and one that is never counted there would be exported as a constant 0 (the gateway showed the
scheduler's batch histograms and failed batches, the scheduler the gateway's submits), which reads as a
statement about that process and doubles the series a dashboard sums over instances.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.metrics_core import Metric

log = logging.getLogger(__name__)
PORT_ENV = "JOBWIRE_METRICS_PORT"
#: the address to bind (default all: a container's port is published by its runtime)
ADDR_ENV = "JOBWIRE_METRICS_ADDR"

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_WAIT = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

# gateway
#: ``kind``: job (``POST /v1/jobs``), array (the same route with ``array``), batch (``/v1/jobs:batch``),
#: workflow (``/v1/workflows``); a refusal before the body is read is counted under its route's kind
SUBMITS = Counter(
    "jobwire_submits",
    "Submissions answered by the gateway, by HTTP status and kind (job, array, batch, workflow)",
    ["status", "kind"],
)
#: one submit of a batch, array or workflow is many jobs: what the fleet is asked to run, by kind
SUBMITTED_JOBS = Counter(
    "jobwire_submitted_jobs", "Jobs in the submissions the gateway took (201 or 202), by kind", ["kind"]
)
SUBMIT_SECONDS = Histogram(
    "jobwire_submit_duration_seconds", "Time the gateway took to answer a submission", buckets=_LATENCY
)

# scheduler
SUBMIT_TO_RUNNING = Histogram(
    "jobwire_submit_to_running_seconds",
    "From a job's creation to its first running state, by backend",
    ["backend"],
    buckets=_WAIT,
)
BATCH_MESSAGES = Histogram(
    "jobwire_scheduler_batch_messages",
    "Commands and reports applied in one scheduler transaction",
    buckets=(0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
BATCH_SECONDS = Histogram(
    "jobwire_scheduler_batch_duration_seconds",
    "Time to apply, commit and publish one batch",
    buckets=_LATENCY,
)
BATCHES_FAILED = Counter(
    "jobwire_scheduler_failed_batches", "Batches rolled back (their messages are redelivered)"
)
DISPATCHES = Counter("jobwire_scheduler_dispatches", "Attempts sent to a node", ["node"])

# executors
POLL_SECONDS = Histogram(
    "jobwire_executor_poll_duration_seconds",
    "One status poll of every run on the node (one backend list call)",
    ["backend"],
    buckets=_LATENCY,
)
BACKEND_ERRORS = Counter(
    "jobwire_backend_errors",
    "Backend calls that failed (sbatch, qstat, slurmrestd, docker, ssh ...), by what was asked: start, "
    "poll, signal (cancel, timeout, kill), hold",
    ["backend", "call"],
)
# (one executor process serves one node: Prometheus's instance label tells nodes apart)
LOG_BYTES = Counter("jobwire_log_bytes", "Job output bytes published to the log stream", ["stream"])
ARTIFACT_BYTES = Counter("jobwire_artifact_bytes", "Artifact bytes uploaded to the object store")

# every process
NATS_RECONNECTS = Counter("jobwire_nats_reconnects", "Reconnections to NATS", ["client"])


def _names(*metrics: Counter | Histogram) -> frozenset[str]:
    return frozenset(family.name for m in metrics for family in m.describe())


#: the series each kind of process counts; ``jobwire_nats_reconnects`` is every process's
OWNED: dict[str, frozenset[str]] = {
    "gateway": _names(SUBMITS, SUBMITTED_JOBS, SUBMIT_SECONDS),
    "scheduler": _names(SUBMIT_TO_RUNNING, BATCH_MESSAGES, BATCH_SECONDS, BATCHES_FAILED, DISPATCHES),
    "executor": _names(POLL_SECONDS, BACKEND_ERRORS, LOG_BYTES, ARTIFACT_BYTES),
}
_EVERY = _names(NATS_RECONNECTS)
_ANYONES = frozenset().union(*OWNED.values())


def role_of(service: str) -> str:
    """``scheduler``, ``gateway`` or ``executor`` for a service name (``jobwire-executor-ssh`` ...)."""
    for role in ("scheduler", "gateway"):
        if role in service:
            return role
    return "executor"


class _Own:
    """The default registry's families less the jobwire series another kind of process counts."""

    def __init__(self, role: str) -> None:
        self.keep = OWNED[role] | _EVERY

    def collect(self) -> Iterator[Metric]:
        for family in REGISTRY.collect():
            if family.name not in _ANYONES or family.name in self.keep:
                yield family


def registry(role: str) -> CollectorRegistry:
    """What ``role``'s process exports: its own jobwire series, NATS reconnects, process and Python."""
    if role not in OWNED:
        raise ValueError(f"unknown metrics role {role!r} (one of {sorted(OWNED)})")
    own = CollectorRegistry(auto_describe=False)
    own.register(_Own(role))
    return own


def serve_metrics(
    environ: Mapping[str, str] | None = None,
    *,
    addr: str = "0.0.0.0",  # noqa: S104
    role: str = "executor",
) -> int | None:
    """Serve ``role``'s ``/metrics`` on ``$JOBWIRE_METRICS_PORT`` when set (in a thread); the bound port,
    else None."""
    env = environ if environ is not None else os.environ
    value = env.get(PORT_ENV, "").strip()
    if not value:
        return None
    server, _ = start_http_server(int(value), addr=env.get(ADDR_ENV, addr), registry=registry(role))
    bound = int(server.server_address[1])
    log.info("metrics on :%d/metrics", bound)
    return bound
