"""Whether a job could ever run on a node, and why not: one set of rules for gateway and scheduler.

The gateway refuses at submit a job that no registered node could ever take (a 422 naming the resource
and the largest offer, as Slurm refuses at ``sbatch``); the scheduler uses the same rules to choose among
nodes and to say why a job waits. Pure functions over a node's description and the spec: no IO.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from .job import NodeCapacity
from .spec import JobSpec, Resources

#: backends whose nodes run a job's ``image`` (a container engine); elsewhere an image cannot be honoured
IMAGE_BACKENDS = frozenset({"docker"})
#: backends that run a gang job (``resources.nodes`` > 1) as one rank per node, started together
#: (each rank's container and attempt directory are named by its rank, so nodes of one Docker engine
#: or one shared root take ranks of one gang; each node publishes the address its peers reach)
GANG_BACKENDS = frozenset({"docker", "local", "ssh"})
#: backends whose nodes may run a gang as one multi-node batch job on their one executor node
#: (``sbatch --nodes N``), asked for with ``backend``: the batch system places the ranks, not jobwire.
#: Only a node whose capacity says ``gang_launch`` (executor-hpc on SLURM) takes such a job.
BATCH_GANG_BACKENDS = frozenset({"hpc"})
#: how many names a message lists at most
MAX_LISTED = 12
#: label that names a node's cluster (``spec.cluster``)
CLUSTER_LABEL = "cluster"
#: only these spec labels constrain placement; the others are the job's own tags
NODE_LABEL_PREFIX = "node."


class Offer(Protocol):
    """What a node offers, as the scheduler's view and the stored ``NodeView`` both describe it."""

    name: str
    backend: str
    capacity: NodeCapacity
    labels: dict[str, str]
    pool: str | None


@dataclass(frozen=True)
class Refusal:
    """Why no registered node could ever run a job; ``path`` points at the part of the spec to change."""

    detail: str
    path: str


def runs_images(node: Offer) -> bool:
    return node.backend in IMAGE_BACKENDS


def mismatch(node: Offer, spec: JobSpec) -> str | None:
    """The placement hint ``node`` does not satisfy (name, backend, pool, cluster, labels, image), or None."""
    if spec.node and spec.node != node.name:
        return "node"
    if spec.backend and spec.backend != node.backend:
        return "backend"
    if spec.pool and spec.pool != node.pool:
        return "pool"
    if spec.cluster and node.labels.get(CLUSTER_LABEL) != spec.cluster:
        return "cluster"
    if any(node.labels.get(k) != v for k, v in node_labels(spec).items()):
        return "labels"
    if spec.image and not runs_images(node):
        return "image"
    if missing_option(node, spec) is not None:
        return "options"
    if batch_gang(spec) and not node.capacity.gang_launch:
        return "gang"
    return None


def job_slots(res: Resources) -> int:
    """The slots a job takes on a batch system: its ``slots``, or its CPUs rounded up when more."""
    return max(res.slots, math.ceil(res.cpus - 1e-9))


def missing_option(node: Offer, spec: JobSpec) -> str | None:
    """The spec option (``sge.parallel_environment``) a multi-slot job must set to run on ``node``
    and does not, or None."""
    need = node.capacity.single_slot_unless
    if need is None or job_slots(spec.resources) <= 1:
        return None
    value: object = spec
    for part in need.split("."):
        value = getattr(value, part, None)
        if value is None:
            return need
    return None if value else need


def fits_at_all(cap: NodeCapacity, res: Resources) -> bool:
    """Could a node of this capacity ever run the job (its totals, ignoring what runs now)?"""
    if res.cpus > cap.cpus + 1e-9 or res.gpus > cap.gpus:
        return False
    return not (cap.memory is not None and res.memory_bytes is not None and res.memory_bytes > cap.memory)


def serves(node: Offer, owner: str | None) -> bool:
    """The node runs ``owner``'s jobs: it serves every owner, or that one (None: owner not known here)."""
    only = node.capacity.owner
    return only is None or owner is None or owner == only


def eligible(node: Offer, spec: JobSpec, owner: str | None = None) -> bool:
    """The node satisfies every hint, serves ``owner`` and is big enough; whether it is up is the
    caller's concern."""
    return mismatch(node, spec) is None and serves(node, owner) and fits_at_all(node.capacity, spec.resources)


def usable_slots(cap: NodeCapacity, res: Resources) -> int:
    """How many jobs like this one the node runs at once: its slots, unless CPUs, GPUs or memory run
    out first (a 2-CPU node with 6 slots runs two 1-CPU jobs). At least 1, for a job that fits at all."""
    n = cap.slots
    if res.cpus > 0:
        n = min(n, int((cap.cpus + 1e-9) // res.cpus))
    if res.gpus > 0:
        n = min(n, cap.gpus // res.gpus)
    if cap.memory is not None and res.memory_bytes:
        n = min(n, cap.memory // res.memory_bytes)
    return max(1, n)


def node_labels(spec: JobSpec) -> dict[str, str]:
    return {k: v for k, v in spec.labels.items() if k.startswith(NODE_LABEL_PREFIX)}


def refusal(nodes: Sequence[Offer], spec: JobSpec, owner: str | None = None) -> Refusal | None:
    """Why no node in ``nodes`` (every registered node, up or down) could ever run ``owner``'s ``spec``;
    None when one could, or when no node is registered yet (nothing to judge by: the job waits for one)."""
    if not nodes:
        return None
    why = _node_refusal(nodes, spec, owner)
    if why is None and spec.resources.nodes > 1 and not batch_gang(spec):
        return gang_refusal(nodes, spec, owner)
    return why


def batch_gang(spec: JobSpec) -> bool:
    """A gang its batch system places: one ``--nodes N`` batch job on one executor node."""
    return spec.resources.nodes > 1 and spec.backend in BATCH_GANG_BACKENDS


def gang_groups(nodes: Sequence[Offer], spec: JobSpec, owner: str | None = None) -> dict[str, list[Offer]]:
    """The nodes that could each run one rank of ``owner``'s gang, by backend (a gang's ranks share one)."""
    out: dict[str, list[Offer]] = {}
    for n in nodes:
        if n.backend in GANG_BACKENDS and eligible(n, spec, owner):
            out.setdefault(n.backend, []).append(n)
    return out


def gang_refusal(nodes: Sequence[Offer], spec: JobSpec, owner: str | None = None) -> Refusal | None:
    """Why no backend here has ``resources.nodes`` nodes that could each run one rank, or None."""
    want = spec.resources.nodes
    groups = gang_groups(nodes, spec, owner)
    most = max(groups.items(), key=lambda kv: len(kv[1]), default=None)
    if most is not None and len(most[1]) >= want:
        return None
    offer = f"the most is {len(most[1])} of backend {most[0]}" if most else "none fits"
    return Refusal(
        f"needs {want} nodes of one backend that runs gangs ({', '.join(sorted(GANG_BACKENDS))}), "
        f"each fitting one rank; {offer} (or backend: hpc on SLURM, one --nodes {want} batch job)",
        "$.resources.nodes",
    )


def _node_refusal(nodes: Sequence[Offer], spec: JobSpec, owner: str | None) -> Refusal | None:
    """Why no node in ``nodes`` could run ``spec`` (one rank of it, for a gang), or None."""
    cands = list(nodes)
    scope = ""
    for step in _HINTS:
        kept, refused = step(cands, spec, scope)
        if refused is not None:
            return refused
        cands, scope = kept
    why = _owner_refusal(cands, owner, scope)
    if why is not None:
        return why
    cands = [n for n in cands if serves(n, owner)]
    res = spec.resources
    if res.gpus:
        best = max(cands, key=lambda n: n.capacity.gpus)
        if best.capacity.gpus < res.gpus:
            if best.capacity.gpus == 0:
                offer = f"no node{scope} has GPUs"
            else:
                offer = f"the most any node{scope} has is {best.capacity.gpus} ({best.name})"
            return Refusal(f"needs {_count(res.gpus, 'GPU')}; {offer}", "$.resources.gpus")
        cands = [n for n in cands if n.capacity.gpus >= res.gpus]
    best = max(cands, key=lambda n: n.capacity.cpus)
    if best.capacity.cpus + 1e-9 < res.cpus:
        return Refusal(
            f"needs {_count(res.cpus, 'CPU')}; the most any node{scope}{_with_gpus(res)} has is "
            f"{_number(best.capacity.cpus)} ({best.name})",
            "$.resources.cpus",
        )
    cands = [n for n in cands if n.capacity.cpus + 1e-9 >= res.cpus]
    mem = res.memory_bytes
    if mem is not None and all(n.capacity.memory is not None for n in cands):
        best = max(cands, key=lambda n: n.capacity.memory or 0)
        most = best.capacity.memory or 0
        if most < mem:
            return Refusal(
                f"needs {format_size(mem)} of memory; the most any node{scope}{_with_cpus(res)} has is "
                f"{format_size(most)} ({best.name})",
                "$.resources.memory",
            )
    return None


def waiting_reason(
    nodes: Sequence[Offer], spec: JobSpec, down: dict[str, datetime | None], owner: str | None = None
) -> str:
    """Why a job that no up node takes waits: the nodes that fit are down (named, with since when), or
    none fits (the refusal the gateway would give). ``down`` maps down nodes to when they went down."""
    fit = [n for n in nodes if eligible(n, spec, owner)]
    if fit and all(n.name in down for n in fit):
        if len(fit) == 1:
            return f"node {fit[0].name} is down{_since(down[fit[0].name])}"
        shown = [f"{n.name}{_since(down[n.name])}" for n in fit[:MAX_LISTED]]
        more = f" and {len(fit) - MAX_LISTED} more" if len(fit) > MAX_LISTED else ""
        return f"all {len(fit)} nodes that fit are down: {', '.join(shown)}{more}"
    why = refusal(nodes, spec, owner)
    if why is not None:
        return f"no registered node can run it: {why.detail}"
    if not nodes:
        return "no node is registered yet"
    return "waiting for a node that fits"


def busy_reason(nodes: Sequence[Offer], spec: JobSpec) -> str:
    """Why a job placed on a node's queue does not start yet: every node that fits is busy."""
    backends = {n.backend for n in nodes}
    kind = f"{next(iter(backends))} " if len(backends) == 1 else ""
    if len(nodes) == 1:
        return f"node {nodes[0].name} is busy"
    return f"all {len(nodes)} {kind}nodes that fit are busy"


def with_position(reason: str | None, position: int | None, node: str | None) -> str | None:
    """A busy job's reason with how many jobs wait ahead of it, counted when it is read (the stored
    reason would go stale as the queue moves)."""
    if reason is None or position is None or not reason.endswith(" busy"):
        return reason
    ahead = "nothing waits ahead of it" if position == 0 else f"{_count(position, 'job')} ahead of it"
    return f"{reason}; {ahead}" + (f" on {node}" if node and position else "")


def _owner_refusal(cands: list[Offer], owner: str | None, scope: str) -> Refusal | None:
    """Every node the hints leave runs another owner's jobs only: name them and what to configure."""
    if owner is None or any(serves(n, owner) for n in cands):
        return None
    theirs = _listed(sorted(f"{n.name} ({n.capacity.owner})" for n in cands))
    return Refusal(
        f"no node{scope} runs jobs of owner {owner!r}: {theirs} run only their one owner's jobs, as "
        "their executor's own OS account; an executor with JOBWIRE_EXECUTOR_RUN_AS=owner (an account per "
        "owner) or its own JOBWIRE_EXECUTOR_OWNER serves this owner",
        "$",
    )


# --- the placement hints, in the order a refusal names them -------------------------------------------

#: the nodes a hint leaves and the words for them ("of backend docker"), or why none is left
Outcome = tuple[tuple[list[Offer], str], Refusal | None]
Step = Callable[[list[Offer], JobSpec, str], Outcome]


def _by_name(cands: list[Offer], spec: JobSpec, scope: str) -> Outcome:
    if not spec.node:
        return (cands, scope), None
    kept = [n for n in cands if n.name == spec.node]
    if not kept:
        known = _listed(sorted(n.name for n in cands))
        return (kept, scope), Refusal(f"no node named {spec.node!r}; known: {known}", "$.node")
    return (kept, f" named {spec.node!r}"), None


def _by_backend(cands: list[Offer], spec: JobSpec, scope: str) -> Outcome:
    if not spec.backend:
        return (cands, scope), None
    kept = [n for n in cands if n.backend == spec.backend]
    if not kept:
        offered = _listed(sorted({n.backend for n in cands}))
        return (kept, scope), Refusal(
            f"no node{scope} is of backend {spec.backend!r}; backends offered: {offered}", "$.backend"
        )
    return (kept, f"{scope} of backend {spec.backend}"), None


def _by_pool(cands: list[Offer], spec: JobSpec, scope: str) -> Outcome:
    if not spec.pool:
        return (cands, scope), None
    kept = [n for n in cands if n.pool == spec.pool]
    if not kept:
        pools = sorted({n.pool for n in cands if n.pool})
        offered = f"pools offered: {_listed(pools)}" if pools else "none is in a pool"
        return (kept, scope), Refusal(f"no node{scope} is in pool {spec.pool!r}; {offered}", "$.pool")
    return (kept, f"{scope} in pool {spec.pool}"), None


def _by_cluster(cands: list[Offer], spec: JobSpec, scope: str) -> Outcome:
    if not spec.cluster:
        return (cands, scope), None
    kept = [n for n in cands if n.labels.get(CLUSTER_LABEL) == spec.cluster]
    if not kept:
        clusters = sorted({n.labels[CLUSTER_LABEL] for n in cands if CLUSTER_LABEL in n.labels})
        offered = f"clusters offered: {_listed(clusters)}" if clusters else "none names a cluster"
        return (kept, scope), Refusal(
            f"no node{scope} is in cluster {spec.cluster!r}; {offered}", "$.cluster"
        )
    return (kept, f"{scope} in cluster {spec.cluster}"), None


def _by_labels(cands: list[Offer], spec: JobSpec, scope: str) -> Outcome:
    for key, value in sorted(node_labels(spec).items()):
        kept = [n for n in cands if n.labels.get(key) == value]
        if not kept:
            values = sorted({n.labels[key] for n in cands if key in n.labels})
            offered = f"values offered: {_listed(values)}" if values else f"none has label {key}"
            return (kept, scope), Refusal(
                f"no node{scope} has label {key}={value}; {offered}", f"$.labels[{key!r}]"
            )
        cands, scope = kept, f"{scope} with {key}={value}"
    return (cands, scope), None


def _by_image(cands: list[Offer], spec: JobSpec, scope: str) -> Outcome:
    if not spec.image:
        return (cands, scope), None
    kept = [n for n in cands if runs_images(n)]
    if not kept:
        which = " or ".join(sorted(IMAGE_BACKENDS))
        return (kept, scope), Refusal(
            f"the job names an image ({spec.image}) but no node{scope} runs images "
            f"(nodes of backend {which} do); drop `image` to run on the node itself",
            "$.image",
        )
    return (kept, scope), None


def _by_options(cands: list[Offer], spec: JobSpec, scope: str) -> Outcome:
    kept = [n for n in cands if missing_option(n, spec) is None]
    if not kept:
        need = missing_option(cands[0], spec) or ""
        slots = job_slots(spec.resources)
        return (kept, scope), Refusal(
            f"needs {slots} slots; no node{scope} runs a job on more than one slot without {need} "
            f"(name one, such as smp, or have the operator set a default parallel environment)",
            f"$.{need}",
        )
    return (kept, scope), None


def _by_gang_launch(cands: list[Offer], spec: JobSpec, scope: str) -> Outcome:
    if not batch_gang(spec):
        return (cands, scope), None
    kept = [n for n in cands if n.capacity.gang_launch]
    if not kept:
        return (kept, scope), Refusal(
            f"needs {spec.resources.nodes} nodes in one batch job; no node{scope} launches a gang's "
            "ranks itself (an executor-hpc node on SLURM does)",
            "$.resources.nodes",
        )
    return (kept, scope), None


_HINTS: tuple[Step, ...] = (
    _by_name,
    _by_backend,
    _by_pool,
    _by_cluster,
    _by_labels,
    _by_image,
    _by_options,
    _by_gang_launch,
)


# --- wording ------------------------------------------------------------------------------------------


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown if len(items) <= MAX_LISTED else f"{shown}, ... ({len(items)} in all)"


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _count(n: float, unit: str) -> str:
    return f"{_number(n)} {unit}" + ("" if n == 1 else "s")


def _with_gpus(res: Resources) -> str:
    return f" with {_count(res.gpus, 'GPU')}" if res.gpus else ""


def _with_cpus(res: Resources) -> str:
    parts = [_count(res.gpus, "GPU")] if res.gpus else []
    if res.cpus > 1:
        parts.append(_count(res.cpus, "CPU"))
    return f" with {' and '.join(parts)}" if parts else ""


def _since(at: datetime | None) -> str:
    return f" since {at.strftime('%H:%M:%S')} UTC" if at is not None else ""


def format_size(n: int) -> str:
    """Bytes as a short power-of-1024 size (``"512M"``, ``"1.5G"``), as sizes are written in specs."""
    value = float(n)
    for unit in ("", "K", "M", "G", "T", "P"):
        if value < 1024:
            return f"{_number(round(value, 1))}{unit}" if unit else f"{n} bytes"
        value /= 1024
    return f"{_number(round(value, 1))}E"
