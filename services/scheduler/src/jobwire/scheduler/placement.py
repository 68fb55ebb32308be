"""Placement: the hard rules, then a policy (``jobwire.runtime.placement``, entry point group
``jobwire.placement``) ranks what is left. ``least-queued-time`` is the built-in one."""

from __future__ import annotations

from typing import TypeVar

from jobwire.contracts import v1
from jobwire.contracts.v1 import feasibility
from jobwire.runtime import plugins
from jobwire.runtime.placement import Candidate, PlacementPolicy

from .cluster import NodeState


def eligible(node: NodeState, spec: v1.JobSpec, owner: str | None = None) -> bool:
    """Hard constraints: up, and the rules the gateway checks at submit (name, backend, pool, cluster,
    labels, image, the owners it serves, big enough at all), from the one module both use."""
    return node.up and feasibility.eligible(node, spec, owner)


N = TypeVar("N", bound=Candidate)


class LeastQueuedTime(PlacementPolicy):
    """The node whose queue drains first: (queued + remaining running) expected time over its slots."""

    name = "least-queued-time"

    def choose(self, spec: v1.JobSpec, nodes: list[N], now: float) -> N | None:
        if not nodes:
            return None
        res = spec.resources
        return min(nodes, key=lambda n: (n.queued_time(now, res), len(n.running) + len(n.queued), n.name))


def place(
    policy: PlacementPolicy, spec: v1.JobSpec, nodes: list[NodeState], now: float, owner: str | None = None
) -> NodeState | None:
    return policy.choose(spec, [n for n in nodes if eligible(n, spec, owner)], now)


def load_policy(name: str) -> PlacementPolicy:
    builtin: dict[str, type[PlacementPolicy]] = {LeastQueuedTime.name: LeastQueuedTime}
    try:
        cls = plugins.load("placement policy", name, PlacementPolicy, builtin)  # type: ignore[type-abstract]
    except LookupError as e:
        raise ValueError(f"unknown placement policy {name!r}: {e}") from None
    return cls()
