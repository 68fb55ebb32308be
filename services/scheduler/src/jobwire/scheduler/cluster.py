"""The scheduler's in-memory view of nodes and their queues, rebuilt from the database on start.

Only the scheduler mutates it, from one task, so it needs no locks. The database stays the
source of truth; this view makes placement and dispatch O(nodes), not a query per decision.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from jobwire.contracts import v1
from jobwire.contracts.v1 import feasibility

from .fairshare import FairShare
from .waits import Waits

#: at most this many distinct resource shapes are shared (``shared``); past it each job keeps its own
SHARED_MAX = 4096
_shapes: dict[tuple[object, ...], v1.Resources] = {}


def shared(res: v1.Resources) -> v1.Resources:
    """One object per distinct resource shape: tens of thousands of queued jobs mostly ask for a few
    shapes, and each kept its own copy (nothing mutates them once decoded)."""
    key = msgspec.structs.astuple(res)
    got = _shapes.get(key)
    if got is None:
        if len(_shapes) >= SHARED_MAX:
            return res
        got = _shapes[key] = res
    return got


@dataclass(slots=True)
class QueuedJob:
    """What placement and dispatch need to know about a job that waits, kept small: a site holds tens
    of thousands (issue 11: each held its decoded spec, about 1.3 KB). The spec stays in the job's
    row and is read when the job is dispatched or placed again; only a gang keeps it (``gang``), its
    nodes being chosen again each round."""

    id: str
    priority: int
    expected_runtime: float
    resources: v1.Resources
    owner: str
    #: the trace context of its submit, continued when it is dispatched (None: none came)
    trace: dict[str, str] | None = None
    #: monotonic time before which it is not started (a retry's backoff); 0: at once
    not_before: float = 0.0
    #: the whole spec of a gang job (ranks on several nodes at once); None for a job of one node
    gang: v1.JobSpec | None = None
    #: its place in queues: priority first, then submit order; one tuple shared by every queue it is in
    key: tuple[int, str] = field(init=False)

    def __post_init__(self) -> None:
        self.key = (-self.priority, self.id)


@dataclass(slots=True)
class RunningJob:
    id: str
    attempt: int
    resources: v1.Resources
    expected_runtime: float
    since: float  # monotonic time of dispatch or start
    timeout: float | None = None
    #: reported running: only then does its timeout count (a batch job may wait long in its queue)
    running: bool = False
    #: whose run it is: its resources count as that owner's load in fair share
    owner: str = ""


@dataclass
class NodeState:
    name: str
    backend: str
    capacity: v1.NodeCapacity
    labels: dict[str, str] = field(default_factory=dict)
    pool: str | None = None
    up: bool = True
    #: when it was marked down (wall clock, for "node X is down since ..."); None while up
    down_since: datetime | None = None
    instance: str | None = None
    last_seen: float = field(default_factory=time.monotonic)
    queue_keys: list[tuple[int, str]] = field(default_factory=list)
    #: the same keys per owner: each owner's own order (priority, then submit order), for fair share
    owner_keys: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    queued: dict[str, QueuedJob] = field(default_factory=dict)
    running: dict[str, RunningJob] = field(default_factory=dict)
    #: the expected runtimes of ``queued``, summed as jobs come and go: placement asks for it once per
    #: node per job, and summing the queue each time made a submit O(backlog) (quadratic in a burst)
    queued_work: float = 0.0

    # --- queue ---------------------------------------------------------------------------------
    def enqueue(self, job: QueuedJob) -> int:
        """Add a job in priority order; returns its 0-based queue position."""
        if job.id in self.queued:  # queued again: counted once
            self.dequeue(job.id)
        bisect.insort(self.queue_keys, job.key)
        bisect.insort(self.owner_keys.setdefault(job.owner, []), job.key)
        self.queued[job.id] = job
        self.queued_work += job.expected_runtime
        return bisect.bisect_left(self.queue_keys, job.key)

    def dequeue(self, job_id: str) -> QueuedJob | None:
        job = self.queued.pop(job_id, None)
        if job is not None:
            # an empty queue is exactly 0 again (no rounding left over from the additions)
            self.queued_work = self.queued_work - job.expected_runtime if self.queued else 0.0
            i = bisect.bisect_left(self.queue_keys, job.key)
            if i < len(self.queue_keys) and self.queue_keys[i] == job.key:
                del self.queue_keys[i]
            mine = self.owner_keys.get(job.owner, [])
            i = bisect.bisect_left(mine, job.key)
            if i < len(mine) and mine[i] == job.key:
                del mine[i]
            if not mine:
                self.owner_keys.pop(job.owner, None)
        return job

    def head(self) -> QueuedJob | None:
        return self.queued[self.queue_keys[0][1]] if self.queue_keys else None

    def due(self, now: float, n: int) -> list[QueuedJob]:
        """The first ``n`` jobs in queue order that may start now: a job waiting out a retry's backoff
        is passed over, and keeps its place for when its time comes."""
        out: list[QueuedJob] = []
        for _, job_id in self.queue_keys:
            if len(out) >= n:
                break
            job = self.queued[job_id]
            if job.not_before <= now:
                out.append(job)
        return out

    def pick(
        self, now: float, fair: FairShare, extra: dict[str, float] | None = None, skip: set[str] | None = None
    ) -> QueuedJob | None:
        """The job a free slot goes to: the first due job (in its owner's own order) of the owner with
        the lowest load per share (``FairShare.load``; ``extra``: units assumed started already in
        this round); ties go to the job first in the node's queue. ``skip``: jobs already picked."""
        best: QueuedJob | None = None
        best_rank: tuple[float, tuple[int, str]] | None = None
        for owner, keys in self.owner_keys.items():
            first = next(
                (
                    self.queued[job_id]
                    for _, job_id in keys
                    if self.queued[job_id].not_before <= now and (skip is None or job_id not in skip)
                ),
                None,
            )
            if first is None:
                continue
            rank = (fair.load(owner, (extra or {}).get(owner, 0.0)), first.key)
            if best_rank is None or rank < best_rank:
                best, best_rank = first, rank
        return best

    def position(self, job_id: str) -> int | None:
        job = self.queued.get(job_id)
        return None if job is None else bisect.bisect_left(self.queue_keys, job.key)

    # --- capacity ------------------------------------------------------------------------------
    def fits_at_all(self, res: v1.Resources) -> bool:
        """Could this node ever run the job (its totals, ignoring what runs now)?"""
        return feasibility.fits_at_all(self.capacity, res)

    def fits_now(self, res: v1.Resources) -> bool:
        """Is there a free slot and enough free CPUs, GPUs and memory right now?"""
        return fits_beside(self.capacity, [r.resources for r in self.running.values()], res)

    def queued_time(self, now: float, res: v1.Resources | None = None) -> float:
        """Seconds of work ahead of a new job: queued plus what is left of running, over the slots that
        jobs like ``res`` really get (a 2-CPU node with 6 slots runs only two 1-CPU jobs at once)."""
        ahead = self.queued_work
        ahead += sum(max(0.0, r.expected_runtime - (now - r.since)) for r in self.running.values())
        slots = self.capacity.slots if res is None else feasibility.usable_slots(self.capacity, res)
        return ahead / max(1, slots)


def fits_beside(cap: v1.NodeCapacity, used: list[v1.Resources], res: v1.Resources) -> bool:
    """Would a job of ``res`` fit on a node of ``cap`` beside jobs of ``used``: a free slot, and
    enough CPUs, GPUs and memory left?"""
    if len(used) >= cap.slots:
        return False
    used_cpus = sum(r.cpus for r in used)
    used_gpus = sum(r.gpus for r in used)
    if used_cpus + res.cpus > cap.cpus + 1e-9 or used_gpus + res.gpus > cap.gpus:
        return False
    if cap.memory is not None and res.memory_bytes is not None:
        used_mem = sum(r.memory_bytes or 0 for r in used)
        if used_mem + res.memory_bytes > cap.memory:
            return False
    return True


@dataclass
class GangRun:
    """A gang job's ranks while they run: one per node, ``nodes[r]`` runs rank ``r``."""

    attempt: int
    nodes: list[str]
    #: the nodes whose rank has not reported its end yet
    left: set[str] = field(default_factory=set)


class Cluster:
    """All nodes, plus jobs no node can take yet (placed when a fitting node appears)."""

    def __init__(self, fair: FairShare | None = None) -> None:
        #: fair share across rebuilds: its decayed usage is kept, what runs is counted again as the
        #: view is rebuilt (``start``)
        self.fair = fair if fair is not None else FairShare()
        self.fair.running.clear()
        self.nodes: dict[str, NodeState] = {}
        self.pending: dict[str, QueuedJob] = {}
        #: job id -> node name, for jobs waiting in a node queue
        self.queued_on: dict[str, str] = {}
        #: job id -> node name, for jobs starting or running
        self.running_on: dict[str, str] = {}
        #: jobs waiting for their dependencies (in no queue until those are met)
        self.waits = Waits()
        #: gang jobs waiting to start all their ranks at once, and the nodes kept for each (taking no
        #: other job until the gang starts: what keeps small jobs from starving it)
        self.gangs: dict[str, QueuedJob] = {}
        self.reserved: dict[str, list[str]] = {}
        #: gang jobs whose ranks were started, by job id
        self.gang_runs: dict[str, GangRun] = {}

    def is_reserved(self, node: str) -> bool:
        return self.reserved_for(node) is not None

    def reserved_for(self, node: str) -> QueuedJob | None:
        """The waiting gang that keeps ``node``, if one does (a node is kept for one gang at most)."""
        for job_id, names in self.reserved.items():
            if node in names and job_id in self.gangs:
                return self.gangs[job_id]
        return None

    def enqueue(self, node: str | None, job: QueuedJob) -> int | None:
        self.remove_queued(job.id)
        if job.gang is not None:
            self.gangs[job.id] = job
            return None
        if node is None:
            self.pending[job.id] = job
            return None
        self.queued_on[job.id] = node
        return self.nodes[node].enqueue(job)

    def remove_queued(self, job_id: str) -> QueuedJob | None:
        self.reserved.pop(job_id, None)
        gang = self.gangs.pop(job_id, None)
        if gang is not None:
            return gang
        job = self.pending.pop(job_id, None)
        node = self.queued_on.pop(job_id, None)
        if node is not None and node in self.nodes:
            job = self.nodes[node].dequeue(job_id) or job
        return job

    def queued_job(self, job_id: str) -> QueuedJob | None:
        if job_id in self.gangs:
            return self.gangs[job_id]
        if job_id in self.pending:
            return self.pending[job_id]
        node = self.queued_on.get(job_id)
        return self.nodes[node].queued.get(job_id) if node in self.nodes else None

    def start(self, node: str, run: RunningJob) -> None:
        self.running_on[run.id] = node
        previous = self.nodes[node].running.get(run.id)
        if previous is not None:
            self.fair.ended(previous.owner, previous.resources)
        self.nodes[node].running[run.id] = run
        self.fair.started(run.owner, run.resources)

    def start_gang(self, nodes: list[str], runs: list[RunningJob]) -> None:
        """Hold a slot for each rank on its node; the job counts as running on its rank 0's node."""
        first = runs[0]
        self.gang_runs[first.id] = GangRun(first.attempt, list(nodes), set(nodes))
        for node, run in zip(nodes, runs, strict=True):
            self.nodes[node].running[run.id] = run
            self.fair.started(run.owner, run.resources)  # each rank counts in its owner's load
        self.running_on[first.id] = nodes[0]

    def finish_rank(self, job_id: str, node: str) -> None:
        """One rank ended well: its node's slot is free; the gang runs on while others are left."""
        gang = self.gang_runs.get(job_id)
        if gang is not None:
            gang.left.discard(node)
        run = self.nodes[node].running.pop(job_id, None) if node in self.nodes else None
        if run is not None:
            self.fair.ended(run.owner, run.resources)

    def finish(self, job_id: str) -> RunningJob | None:
        gang = self.gang_runs.pop(job_id, None)
        if gang is not None:  # every rank's slot is given back at once
            self.running_on.pop(job_id, None)
            runs = [self.nodes[n].running.pop(job_id, None) for n in gang.nodes if n in self.nodes]
            for r in runs:
                if r is not None:
                    self.fair.ended(r.owner, r.resources)
            return next((r for r in runs if r is not None), None)
        node = self.running_on.pop(job_id, None)
        if node is None or node not in self.nodes:
            return None
        run = self.nodes[node].running.pop(job_id, None)
        if run is not None:
            self.fair.ended(run.owner, run.resources)
        return run

    def position(self, job_id: str) -> int | None:
        node = self.queued_on.get(job_id)
        return self.nodes[node].position(job_id) if node in self.nodes else None
