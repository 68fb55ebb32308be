"""Gang jobs (``resources.nodes`` > 1): which nodes take their ranks, and the words for why they wait
or how they ended. Pure functions over the scheduler's view; :class:`~.core.Core` acts on them.

A gang starts all its ranks at once or none (one rank per node, all nodes of one backend), like
Slurm's ``--nodes N`` allocation: a rank started alone would wait at the rendezvous for peers that
may never come, holding its node.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from jobwire.contracts import v1
from jobwire.contracts.v1 import feasibility

from .cluster import NodeState, QueuedJob, fits_beside
from .fairshare import FairShare


class Record(msgspec.Struct, kw_only=True):
    """What ``jobs.gang`` keeps of the current attempt: every rank's node, and the ranks that ended
    well (a restarted scheduler holds slots only for the others and still takes their reports)."""

    nodes: list[str]
    done: list[int] = []


def record(nodes: Sequence[str], done: Sequence[str] = ()) -> bytes:
    return msgspec.json.encode(Record(nodes=list(nodes), done=[list(nodes).index(n) for n in done]))


def read_record(raw: bytes) -> Record:
    return msgspec.json.decode(raw, type=Record)


def free_nodes(
    spec: v1.JobSpec, nodes: Sequence[NodeState], now: float, owner: str | None = None
) -> list[NodeState] | None:
    """``resources.nodes`` up nodes of one backend that each fit one of ``owner``'s ranks now (the least
    loaded first, rank 0 on the first), or None when no backend has that many free."""
    want = spec.resources.nodes
    groups = feasibility.gang_groups([n for n in nodes if n.up], spec, owner)
    for backend in sorted(groups):
        free = [n for n in groups[backend] if isinstance(n, NodeState) and n.fits_now(spec.resources)]
        if len(free) >= want:
            res = spec.resources
            free.sort(key=lambda n: (n.queued_time(now, res), n.name))
            return free[:want]
    return None


def reservation(
    spec: v1.JobSpec, nodes: Sequence[NodeState], kept: list[str] | None, now: float, owner: str | None = None
) -> list[str]:
    """The nodes a waiting gang keeps: those it kept before while all are still up and eligible,
    else the ``resources.nodes`` of one backend whose work ends soonest; [] when no backend has enough."""
    want = spec.resources.nodes
    groups = feasibility.gang_groups([n for n in nodes if n.up], spec, owner)
    if kept is not None:
        names = {n.name for group in groups.values() for n in group}
        if all(name in names for name in kept):
            return kept
    best: list[NodeState] | None = None
    res = spec.resources
    for backend in sorted(groups):
        group = [n for n in groups[backend] if isinstance(n, NodeState)]
        if len(group) < want:
            continue
        group.sort(key=lambda n: (n.queued_time(now, res), n.name))
        pick = group[:want]
        if best is None or pick[-1].queued_time(now, res) < best[-1].queued_time(now, res):
            best = pick
    return [n.name for n in best] if best else []


def ready_in(node: NodeState, res: v1.Resources, now: float) -> float:
    """Seconds until ``node`` could take one rank of ``res``: what runs there ends, by its expected
    runtime, soonest first, until the rank fits beside the rest (0 when it fits now)."""
    runs = sorted(node.running.values(), key=lambda r: r.expected_runtime - (now - r.since))
    left = [r.resources for r in runs]
    waited = 0.0
    for run in runs:
        if fits_beside(node.capacity, left, res):
            break
        waited = max(waited, run.expected_runtime - (now - run.since))
        left.pop(0)
    return max(0.0, waited)


def start_in(spec: v1.JobSpec, nodes: Sequence[NodeState], now: float) -> float:
    """Seconds until every node kept for a gang could take its rank: when the gang is expected to
    start. What overruns its expected runtime counts as ending now, so the estimate only shrinks."""
    return max((ready_in(n, spec.resources, now) for n in nodes), default=0.0)


#: how many of a kept node's queued jobs one round looks at for backfill (as Slurm's bf_max_job_test)
BACKFILL_LOOK = 64


def backfill(
    node: NodeState, gang: QueuedJob, start: float, now: float, fair: FairShare, room: int
) -> list[QueuedJob]:
    """Jobs queued on ``node`` (kept for ``gang``, expected to start in ``start`` s) that may start now
    without delaying it, at most ``room``, in the order a free slot would take them (fair share, then
    priority): each fits now, and either is expected to end before the gang starts or leaves room for
    the gang's rank beside everything on the node. A stream of short jobs cannot hold the gang back:
    once the work before it overruns, ``start`` is 0 and only jobs that leave its rank room start."""
    rank = gang.resources
    used = [r.resources for r in node.running.values()]
    out: list[QueuedJob] = []
    looked: set[str] = set()
    for _ in range(BACKFILL_LOOK):
        if len(out) >= room:
            break
        job = node.pick(now, fair, None, looked)
        if job is None:
            break
        looked.add(job.id)
        res = job.resources
        if not fits_beside(node.capacity, used, res):
            continue
        if job.expected_runtime <= start or fits_beside(node.capacity, [*used, res], rank):
            out.append(job)
            used.append(res)
    return out


def waiting_reason(nodes: Sequence[NodeState], spec: v1.JobSpec, owner: str | None = None) -> str:
    """Why a gang has not started: too few nodes that could take a rank are up, or they are busy."""
    want = spec.resources.nodes
    up = [n for n in nodes if n.up]
    why = feasibility.gang_refusal(up, spec, owner)
    if why is not None:
        return f"waiting for {want} nodes that are up: {why.detail}"
    return f"waiting for {want} nodes of one backend to be free at once (nodes reserved for it)"


def end_reason(
    rank: int, node: str, outcome: v1.JobState, exit_code: int | None, why: str | None, *, stopped: int
) -> str:
    """``rank 1 on g2 failed (exit code 137): killed; the 2 other ranks were stopped``."""
    text = outcome.value.replace("_", " ")
    ended = f"{text} (exit code {exit_code})" if exit_code is not None else text
    out = f"rank {rank} on {node} {ended}" + (f": {why}" if why else "")
    if stopped:
        many = stopped > 1
        out += f"; the {stopped} other rank{'s were' if many else ' was'} stopped"
    return out
