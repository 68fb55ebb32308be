"""Placement policies: which node a job waits on. Entry point group ``jobwire.placement``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from importlib.metadata import entry_points

from jobwire.contracts import v1
from jobwire.contracts.v1 import feasibility

from .cluster import NodeState


def eligible(node: NodeState, spec: v1.JobSpec) -> bool:
    """Hard constraints: up, and the rules the gateway checks at submit (name, backend, pool, cluster,
    labels, image, big enough at all), from the one module both use."""
    return node.up and feasibility.eligible(node, spec)


class PlacementPolicy(ABC):
    name: str = ""

    @abstractmethod
    def choose(self, spec: v1.JobSpec, nodes: list[NodeState], now: float) -> NodeState | None:
        """The node to queue on, among nodes already known eligible; None keeps the job pending."""


class LeastQueuedTime(PlacementPolicy):
    """The node whose queue drains first: (queued + remaining running) expected time over its slots."""

    name = "least-queued-time"

    def choose(self, spec: v1.JobSpec, nodes: list[NodeState], now: float) -> NodeState | None:
        if not nodes:
            return None
        res = spec.resources
        return min(nodes, key=lambda n: (n.queued_time(now, res), len(n.running) + len(n.queued), n.name))


def place(policy: PlacementPolicy, spec: v1.JobSpec, nodes: list[NodeState], now: float) -> NodeState | None:
    return policy.choose(spec, [n for n in nodes if eligible(n, spec)], now)


def load_policy(name: str) -> PlacementPolicy:
    if name == LeastQueuedTime.name:
        return LeastQueuedTime()
    for ep in entry_points(group="jobwire.placement"):
        if ep.name == name:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, PlacementPolicy)):
                raise TypeError(f"placement plugin {name!r} is not a PlacementPolicy")
            return cls()
    raise ValueError(f"unknown placement policy {name!r}")
