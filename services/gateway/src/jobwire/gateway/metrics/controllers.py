"""``GET /metrics``: Prometheus exposition of the gateway's own counters plus the fleet as the database has
it at scrape time (jobs by state and backend, each node's up/down, load, queue and GPUs).

Behind the ``metrics:read`` scope (an operator's token, or admin): on the API port, metrics are never
anonymous. Scheduler and executors serve theirs on ``JOBWIRE_METRICS_PORT`` instead.
"""

from __future__ import annotations

from collections.abc import Iterable

from litestar import Controller, Response, get
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector, CollectorRegistry

from jobwire.contracts import v1
from jobwire.runtime.metrics import registry
from jobwire.store import queries

from ..params import Res

#: the gateway's own series (the scheduler's and executors' are theirs to export)
GATEWAY = registry("gateway")

METRICS_SCOPE = "metrics:read"


class _Fleet(Collector):
    """Gauges built from one scrape's reads (a collector per scrape: nothing is cached between them)."""

    def __init__(self, per_node: list[tuple[str, str, int]], nodes: list[v1.NodeView]) -> None:
        backend = {n.name: n.backend for n in nodes}
        jobs: dict[tuple[str, str], int] = {}
        for node, state, n in per_node:  # a job's backend is its node's ('' while on no node)
            key = (state, backend.get(node, ""))
            jobs[key] = jobs.get(key, 0) + n
        self.jobs = [(state, b, n) for (state, b), n in sorted(jobs.items())]
        self.nodes = nodes

    def collect(self) -> Iterable[GaugeMetricFamily]:
        jobs = GaugeMetricFamily(
            "jobwire_jobs", "Stored jobs by state and backend", labels=["state", "backend"]
        )
        seen = set()
        for state, backend, n in self.jobs:
            jobs.add_metric([state, backend], n)
            seen.add(state)
        for state in v1.JobState:  # every state present, so a rate or an alert never sees a gap
            if state.value not in seen:
                jobs.add_metric([state.value, ""], 0)
        yield jobs
        up = GaugeMetricFamily("jobwire_node_up", "1 when the node heart-beats", labels=["node", "backend"])
        slots = GaugeMetricFamily("jobwire_node_slots", "Jobs the node runs at once", labels=["node"])
        running = GaugeMetricFamily("jobwire_node_running_jobs", "Jobs running on the node", labels=["node"])
        queued = GaugeMetricFamily("jobwire_node_queued_jobs", "Jobs queued for the node", labels=["node"])
        queued_s = GaugeMetricFamily(
            "jobwire_node_queued_seconds",
            "Expected work waiting on the node, over its slots",
            labels=["node"],
        )
        gpus = GaugeMetricFamily("jobwire_node_gpus", "GPUs the node offers", labels=["node"])
        gpus_used = GaugeMetricFamily(
            "jobwire_node_gpus_used", "GPUs a job holds (nodes with a GPU inventory)", labels=["node"]
        )
        beat = GaugeMetricFamily(
            "jobwire_node_last_heartbeat_timestamp_seconds", "When the node last heart-beat", labels=["node"]
        )
        for node in self.nodes:
            up.add_metric([node.name, node.backend], 1 if node.state == "up" else 0)
            slots.add_metric([node.name], node.capacity.slots)
            running.add_metric([node.name], node.running)
            queued.add_metric([node.name], node.queued)
            queued_s.add_metric([node.name], node.queued_seconds)
            gpus.add_metric([node.name], node.capacity.gpus)
            gpus_used.add_metric([node.name], sum(1 for g in node.gpus if g.job_id))
            if node.last_heartbeat is not None:
                beat.add_metric([node.name], node.last_heartbeat.timestamp())
        yield from (up, slots, running, queued, queued_s, gpus, gpus_used, beat)


class MetricsController(Controller):
    path = "/metrics"
    tags = ["operations"]

    @get("/", summary="Prometheus metrics (scope `metrics:read`)", opt={"scope": METRICS_SCOPE})
    async def metrics(self, res: Res) -> Response[bytes]:
        async with res.session() as session:
            # job_counts is kept by triggers: one row per node and state, never a scan of the jobs
            per_node = await queries.count_jobs_per_node(session)
            nodes = await queries.list_nodes(session)
        fleet = CollectorRegistry(auto_describe=False)
        fleet.register(_Fleet(per_node, nodes))
        body = generate_latest(GATEWAY) + generate_latest(fleet)
        return Response(body, media_type=CONTENT_TYPE_LATEST)
