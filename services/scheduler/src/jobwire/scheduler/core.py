"""What the scheduler decides: command and report handlers, placement, dispatch, liveness, timeouts.

Every method runs inside one batch transaction (``Txn``) from the scheduler's single core task.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime, timedelta

import msgspec

from jobwire.contracts import v1
from jobwire.contracts.v1 import deps, feasibility
from jobwire.contracts.v1 import subjects as sj
from jobwire.contracts.v1.gang import master_port
from jobwire.runtime import telemetry
from jobwire.runtime.placement import PlacementPolicy
from jobwire.store.jobrecs import JobRec

from . import gang
from .arrays import Arrays
from .cluster import Cluster, GangRun, NodeState, QueuedJob, RunningJob, shared
from .fairshare import units
from .placement import eligible, place
from .settings import SchedulerSettings
from .txn import Txn

log = logging.getLogger(__name__)
S = v1.JobState
TRACER = "jobwire.scheduler"


class Core:
    def __init__(self, settings: SchedulerSettings, policy: PlacementPolicy, cluster: Cluster) -> None:
        self.settings = settings
        self.policy = policy
        self.cluster = cluster
        self.arrays = Arrays(cluster)
        #: runs we already asked an executor to stop: (job, attempt) -> monotonic time asked
        self.stop_asked: dict[tuple[str, int], float] = {}

    # --- helpers -------------------------------------------------------------------------------
    def expected(self, spec: v1.JobSpec) -> float:
        return (
            spec.expected_runtime or spec.resources.walltime_seconds or self.settings.default_expected_runtime
        )

    def queued_job(self, row: JobRec, spec: v1.JobSpec, trace: dict[str, str] | None = None) -> QueuedJob:
        """The job as it waits in a queue: what placement and dispatch read, not its spec (``QueuedJob``)."""
        not_before = 0.0
        if row.not_before is not None:
            wait = (row.not_before - datetime.now(UTC)).total_seconds()
            not_before = time.monotonic() + wait if wait > 0 else 0.0
        res = spec.resources
        return QueuedJob(
            id=row.id,
            priority=row.priority,
            expected_runtime=self.expected(spec),
            resources=shared(res),
            owner=sys.intern(row.owner),
            trace=trace or None,
            not_before=not_before,
            gang=spec if res.nodes > 1 and not feasibility.batch_gang(spec) else None,
        )

    def spec_of(self, txn: Txn, row: JobRec) -> v1.JobSpec:
        """The job's spec, decoded once per batch (a job placed and dispatched in one batch is decoded
        once); a queued job does not keep it between batches."""
        spec = txn.specs.get(row.id)
        if spec is None:
            spec = txn.specs[row.id] = v1.decode(row.spec, v1.JobSpec)
        return spec

    def place(self, txn: Txn, row: JobRec, job: QueuedJob, spec: v1.JobSpec | None = None) -> int | None:
        """Queue the job on the best node now (or keep it pending); returns its queue position.
        ``spec``: the job's, when the caller has it decoded already (else read from its row).

        The reason says why it would wait: the nodes that fit are busy, or down (named, since when), or
        none fits. A job pinned to a node shows that node while it waits for it.
        """
        nodes = list(self.cluster.nodes.values())
        if job.gang is not None:
            row.node = None
            row.reason = gang.waiting_reason(nodes, job.gang, row.owner)
            return self.cluster.enqueue(None, job)
        if spec is None:
            spec = self.spec_of(txn, row)
        else:
            txn.specs[row.id] = spec
        node = place(self.policy, spec, nodes, time.monotonic(), row.owner)
        if node is None:
            pinned = spec.node if spec.node in self.cluster.nodes else None
            row.node = pinned
            row.backend = self.cluster.nodes[pinned].backend if pinned else row.backend
            down = {n.name: n.down_since for n in nodes if not n.up}
            row.reason = feasibility.waiting_reason(nodes, spec, down, row.owner)
            return self.cluster.enqueue(None, job)
        row.node = node.name
        row.backend = node.backend
        position = self.cluster.enqueue(node.name, job)
        free = node.capacity.slots - len(node.running)
        if position is not None and position < free and node.fits_now(job.resources):
            row.reason = None  # dispatched in this batch
        else:
            row.reason = feasibility.busy_reason([n for n in nodes if eligible(n, spec, row.owner)], spec)
        return position

    def on_node(self, row: JobRec) -> bool:
        """Whether the job holds a slot on its node: starting, running, or launched and then held
        in its batch system (a job held in jobwire's own queue has no node)."""
        return self.where(row) is v1.Where.NODE

    def where(self, row: JobRec) -> v1.Where | None:
        dispatched = row.node is not None and row.dispatched_at is not None
        return v1.where_of(S(row.state), dispatched=dispatched)

    def rule(self, verb: v1.Verb, row: JobRec) -> v1.Rule | None:
        """The eligibility table's rule for ``verb`` on this job, None when it does not apply (also when
        the rule needs a node capability the job's node lacks)."""
        rule = v1.rule_for(verb, S(row.state), self.where(row))
        if rule is None or not rule.needs:
            return rule
        node = self.cluster.nodes.get(row.node) if row.node else None
        return rule if node is not None and getattr(node.capacity, rule.needs, False) else None

    def ask_stop(
        self, txn: Txn, job_id: str, attempt: int, node: str, outcome: v1.JobState, reason: str
    ) -> None:
        key = (job_id, attempt)
        self.stop_asked[key] = time.monotonic()
        run = self.cluster.gang_runs.get(job_id)
        if run is not None and run.attempt == attempt and node in run.nodes:
            for rank_node in sorted(run.left):  # every rank of a gang that still runs
                self.ask_stop_one(txn, job_id, attempt, rank_node, outcome, reason)
            return
        self.ask_stop_one(txn, job_id, attempt, node, outcome, reason)

    def ask_stop_one(
        self, txn: Txn, job_id: str, attempt: int, node: str, outcome: v1.JobState, reason: str
    ) -> None:
        msg = v1.CancelRun(job_id=job_id, attempt=attempt, node=node, outcome=outcome, reason=reason)
        msg_id = sj.attempt_msg_id(job_id, attempt, "cancel", outcome.value, node)
        txn.emit(sj.exec_subject(node, "cancel"), msg, msg_id)

    # --- commands ------------------------------------------------------------------------------
    def submit(self, txn: Txn, cmd: v1.SubmitJob, trace: dict[str, str]) -> None:
        if cmd.job_id in txn.rows:
            return  # a redelivered or duplicated submit: the job exists once
        spec = cmd.spec
        if spec.array is not None:
            self.arrays.submit(txn, cmd)
            return
        row = JobRec(
            id=cmd.job_id,
            owner=cmd.owner,
            name=spec.name,
            state=S.QUEUED.value,
            backend=spec.backend,
            attempt=0,
            max_attempts=spec.max_attempts,
            priority=spec.priority,
            expected_runtime=self.expected(spec),
            timeout=spec.timeout_seconds(),
            spec=v1.encode(spec),
            created_at=cmd.submitted_at or txn.at,
            cancel_requested=False,
            delete_requested=False,
        )
        txn.add(row, spec.labels)
        if spec.after and self.wait_for(txn, row, spec.after):
            return
        position = self.place(txn, row, self.queued_job(row, spec, trace), spec)
        txn.first_transition(row, position)

    # --- dependencies --------------------------------------------------------------------------
    def wait_for(self, txn: Txn, row: JobRec, after: list[v1.Dependency]) -> bool:
        """Hold a new job back until its dependencies are met: True when it waits (or was cancelled at
        once because one can never be met), False when all are met already and it is placed now.
        The dependencies' rows were loaded with the batch."""
        unmet, broken = self.check_after(txn, after)
        if not unmet and broken is None:
            return False
        row.node = None
        row.reason = deps.waiting_reason(unmet or {d.job: d.when for d in after})
        txn.first_transition(row, None)
        if broken is not None:
            txn.transition(row, S.CANCELLED, broken)
        else:
            self.cluster.waits.add(row.id, unmet)
        return True

    def check_after(self, txn: Txn, after: list[v1.Dependency]) -> tuple[dict[str, v1.When], str | None]:
        """The dependencies not met yet, and why the job can never run (the first that can never be
        met), from the dependencies' rows loaded with the batch and the arrays' ends."""
        unmet: dict[str, v1.When] = {}
        broken: str | None = None
        for dep in after:
            dep_row = txn.rows.get(dep.job)
            if dep_row is None and dep.job in self.arrays.open:
                unmet[dep.job] = dep.when  # an array whose tasks have not all ended
                continue
            if dep_row is None and dep.job not in txn.array_ends:
                broken = broken or deps.gone_reason(dep.job)
                continue
            state = S(dep_row.state) if dep_row is not None else txn.array_ends[dep.job]
            left = _attempts_left(dep_row) if dep_row is not None else False
            met = deps.outcome(dep.when, state, attempts_left=left)
            if met is None:
                unmet[dep.job] = dep.when
            elif not met:
                broken = broken or deps.unmet_reason(dep.job, state, dep.when)
        return unmet, broken

    def resolve(self, txn: Txn, ended: list[str]) -> None:
        """Settle the dependents of jobs that ended in this batch (their rows are loaded): one whose
        dependencies are all met is placed now, one whose dependency can no longer be met is cancelled
        at once with the reason (which ends it, so its own dependents follow in the next round)."""
        waits = self.cluster.waits
        for dep in ended:
            waits.drop(dep)  # an ended job waits for nothing
            for job_id in sorted(waits.dependents.get(dep, ())):
                row = txn.rows.get(job_id)
                when = waits.unmet.get(job_id, {}).get(dep)
                if row is None or when is None:
                    waits.drop(job_id)
                    continue
                dep_row = txn.rows.get(dep)
                met: bool | None
                if dep_row is None and dep in txn.array_ends:  # an array closed in this batch
                    state = txn.array_ends[dep]
                    met = deps.outcome(when, state)
                    why = deps.unmet_reason(dep, state, when)
                elif dep_row is None:
                    met, why = False, deps.gone_reason(dep)
                else:
                    state = S(dep_row.state)
                    met = deps.outcome(when, state, attempts_left=_attempts_left(dep_row))
                    why = deps.unmet_reason(dep, state, when)
                if met is None:
                    continue  # requeued in this same batch: it has not ended after all
                if not met:
                    waits.drop(job_id)
                    self.cluster.remove_queued(job_id)
                    txn.transition(row, S.CANCELLED, why)
                elif waits.met(job_id, dep):
                    self.ready(txn, row)
                elif row.state == S.QUEUED.value:
                    row.reason = waits.reason(job_id)

    def ready(self, txn: Txn, row: JobRec) -> None:
        """All its dependencies are met: a queued job is placed now; a held one keeps waiting for its
        release, which places it."""
        if row.state != S.QUEUED.value:
            return
        spec = self.spec_of(txn, row)
        self.place(txn, row, self.queued_job(row, spec), spec)

    def cancel(self, txn: Txn, job_id: str, reason: str) -> None:
        row = txn.rows.get(job_id)
        if row is None:
            if self.arrays.set_flag(txn, job_id, cancelled=True) is not None:
                for task in sorted(self.arrays.live_tasks(job_id)):
                    self.cancel(txn, task, reason)
            return
        rule = self.rule(v1.Verb.CANCEL, row)
        if rule is None:
            return
        if rule.effect is v1.Effect.ASK_NODE and row.node:
            row.cancel_requested = True
            self.ask_stop(txn, job_id, row.attempt, row.node, S.CANCELLED, reason)
        elif rule.effect is v1.Effect.TRANSITION and rule.to is not None:
            self.cluster.remove_queued(job_id)
            txn.transition(row, rule.to, reason)

    def delete(self, txn: Txn, job_id: str) -> None:
        row = txn.rows.get(job_id)
        if row is None:
            return
        rule = self.rule(v1.Verb.DELETE, row)
        if rule is None:
            return
        row.delete_requested = True
        if rule.effect is v1.Effect.ASK_NODE:
            self.cancel(txn, job_id, "deleted by user")
            return  # removed once the executor reports the end
        self.cluster.remove_queued(job_id)
        self.remove(txn, row)

    def remove(self, txn: Txn, row: JobRec) -> None:
        """Delete the job's rows in this batch; its logs, events and artifacts go after the commit."""
        artifacts = [a.name for a in v1.decode(row.artifacts, list[v1.Artifact])] if row.artifacts else []
        txn.rows.pop(row.id, None)
        self.cluster.remove_queued(row.id)
        self.cluster.finish(row.id)
        txn.deleted.append((row, artifacts))
        txn.ended.append(row.id)  # its dependents can no longer have it end as they need
        txn.emit(
            sj.event_subject(row.id, "deleted"),
            v1.JobDeleted(job_id=row.id, at=txn.at),
            sj.job_msg_id(row.id, "deleted"),
        )
        if row.node and row.dispatched_at is not None:
            # its attempt directories (run.json holds the job's environment) go with it
            purge = v1.PurgeJob(job_id=row.id, attempt=row.attempt, node=row.node)
            txn.emit(sj.exec_subject(row.node, "purge"), purge, sj.job_msg_id(row.id, "purge"))

    def hold(self, txn: Txn, job_id: str, reason: str) -> None:
        """A queued job is held here; a launched one is held by its node's batch system, and shows
        ``held`` once the executor sees it so (a run that already runs is not held). An array stops
        making tasks and holds those that wait."""
        if job_id not in txn.rows and self.arrays.set_flag(txn, job_id, held=True) is not None:
            for task in sorted(self.arrays.live_tasks(job_id)):
                self.hold(txn, task, reason)
            return
        row = txn.rows.get(job_id)
        rule = None if row is None else self.rule(v1.Verb.HOLD, row)
        if row is None or rule is None:
            return
        if rule.effect is v1.Effect.TRANSITION and rule.to is not None:
            self.cluster.remove_queued(job_id)
            row.node = None
            txn.transition(row, rule.to, reason)
        elif rule.effect is v1.Effect.ASK_NODE and row.node:
            self.ask_hold(txn, row, release=False)

    def release(self, txn: Txn, job_id: str) -> None:
        if job_id not in txn.rows and self.arrays.set_flag(txn, job_id, held=False) is not None:
            for task in sorted(self.arrays.live_tasks(job_id)):
                self.release(txn, task)
            return
        row = txn.rows.get(job_id)
        rule = None if row is None else self.rule(v1.Verb.RELEASE, row)
        if row is None or rule is None:
            return
        if rule.effect is v1.Effect.ASK_NODE and row.node:
            self.ask_hold(txn, row, release=True)
        elif rule.effect is v1.Effect.TRANSITION and rule.to is not None:
            waiting = self.cluster.waits.reason(job_id)
            if waiting is not None:  # released into the wait for its dependencies, in no queue yet
                txn.transition(row, rule.to, _and_why("released", waiting))
                return
            spec = self.spec_of(txn, row)
            position = self.place(txn, row, self.queued_job(row, spec), spec)
            txn.transition(row, rule.to, _and_why("released", row.reason), queue_position=position)

    def requeue(self, txn: Txn, job_id: str, reason: str) -> None:
        """A finished job is queued again now; a run is stopped first and queued once its node reports
        it ended (with ``queued`` as the stop's outcome). Either way it runs as a new attempt."""
        row = txn.rows.get(job_id)
        rule = None if row is None else self.rule(v1.Verb.REQUEUE, row)
        if row is None or rule is None:
            return
        if rule.effect is v1.Effect.ASK_NODE and row.node:
            self.ask_stop(txn, job_id, row.attempt, row.node, S.QUEUED, reason)
        elif rule.effect is v1.Effect.TRANSITION:
            self.queue_again(txn, row, reason)

    def queue_again(self, txn: Txn, row: JobRec, reason: str) -> None:
        """A requeue: the job runs again, with its spec's attempts from here (its retries and loss
        budget count from the requeue: neither spent by earlier rounds nor unbounded)."""
        row.ended_at = None
        row.cancel_requested = False
        row.not_before = None
        spec = self.spec_of(txn, row)
        row.max_attempts = row.attempt + spec.max_attempts
        if row.attempt == 0 and spec.after:  # it never ran: it waits for its dependencies again
            unmet, broken = self.check_after(txn, spec.after)
            if unmet or broken is not None:
                row.node = None
                waiting = deps.waiting_reason(unmet) if unmet else None
                txn.transition(row, S.QUEUED, _and_why(reason, waiting))
                if broken is not None:
                    txn.transition(row, S.CANCELLED, broken)
                else:
                    self.cluster.waits.add(row.id, unmet)
                return
        position = self.place(txn, row, self.queued_job(row, spec), spec)
        txn.transition(row, S.QUEUED, reason, queue_position=position)

    def ask_hold(self, txn: Txn, row: JobRec, *, release: bool) -> None:
        assert row.node is not None
        msg = v1.HoldRun(job_id=row.id, attempt=row.attempt, node=row.node, release=release)
        what = "release" if release else "hold"
        # one id per request: a later hold after a release is a new message, a replayed outbox row is not
        txn.emit(
            sj.exec_subject(row.node, "hold"),
            msg,
            sj.attempt_msg_id(row.id, row.attempt, what, txn.at.timestamp()),
        )

    # --- executor reports ----------------------------------------------------------------------
    def report(self, txn: Txn, rep: v1.Report) -> None:
        row = txn.rows.get(rep.job_id)
        ranks = self.cluster.gang_runs.get(rep.job_id)
        if row is not None and ranks is not None and rep.attempt == row.attempt == ranks.attempt:
            if rep.node in ranks.nodes and rep.node != row.node:
                self.rank_report(txn, row, ranks, rep)
                return
            if rep.node == row.node and isinstance(rep, v1.RunFinished):
                self.rank_finished(txn, row, ranks, rep)
                return
        if row is None or rep.attempt != row.attempt or row.node != rep.node:
            self.stale(txn, rep, row)
            return
        state = S(row.state)
        if isinstance(rep, v1.RunStarting):
            self.waiting(txn, row, rep)
            return
        if isinstance(rep, v1.RunRunning):
            if state is S.HELD and self.on_node(row):
                txn.transition(row, S.STARTING, "released", at=rep.at)
                state = S.STARTING
            if state is S.STARTING:
                row.ports = v1.encode(rep.ports) if rep.ports else row.ports
                row.details = v1.encode(rep.details) if rep.details else row.details
                txn.transition(row, S.RUNNING, None, at=rep.at)
                run = (
                    self.cluster.nodes[rep.node].running.get(row.id)
                    if rep.node in self.cluster.nodes
                    else None
                )
                if run is not None:
                    run.since = time.monotonic()
                    run.running = True
                self.mark_running(row.id)
            return
        self.finished(txn, row, rep)

    def waiting(self, txn: Txn, row: JobRec, rep: v1.RunStarting) -> None:
        """A launched run that does not run yet: held or released in its batch system, or a new
        reason why it waits (kept as the job's reason)."""
        state = S(row.state)
        if rep.details and state in (S.STARTING, S.HELD):
            row.details = v1.encode(rep.details)  # the batch id, shown while the job still waits
        if rep.held and state is S.STARTING:
            txn.transition(row, S.HELD, rep.reason or "held in the batch system", at=rep.at)
        elif not rep.held and state is S.HELD and self.on_node(row):
            txn.transition(row, S.STARTING, rep.reason or "released", at=rep.at)
        elif state in (S.STARTING, S.HELD) and rep.reason and rep.reason != row.reason:
            row.reason = rep.reason

    def finished(self, txn: Txn, row: JobRec, rep: v1.RunFinished) -> None:
        state = S(row.state)
        on_node = self.on_node(row)
        self.cluster.finish(row.id)
        self.stop_asked.pop((row.id, rep.attempt), None)
        if not on_node:
            return  # already decided (e.g. timed out by the backstop)
        if state is S.HELD and not v1.can_transition(state, rep.outcome):
            txn.transition(row, S.STARTING, "released", at=rep.at)  # released, ran and ended between polls
        row.exit_code = rep.exit_code
        if rep.usage is not None:
            row.usage = v1.encode(rep.usage)
        if rep.artifacts:
            row.artifacts = v1.encode(rep.artifacts)
        outcome = rep.outcome
        if row.cancel_requested and outcome in (S.FAILED, S.LOST):
            outcome = S.CANCELLED
        if outcome is S.LOST:
            self.lose(txn, row, rep.reason or "the executor lost the run")
        elif outcome is S.QUEUED:
            self.queue_again(txn, row, rep.reason or "requeued")
        elif outcome in (S.FAILED, S.TIMED_OUT) and self.retries(row, outcome):
            # shown in the job's history as it ended, but no ``failed`` event: the job is not over
            txn.record(row, outcome, rep.reason, at=rep.at)
            self.retry(txn, row, f"attempt {row.attempt} {_ended(outcome, row.exit_code)}")
        else:
            txn.transition(row, outcome, rep.reason, at=rep.at)
        if row.delete_requested and v1.is_finished(S(row.state)):
            self.remove(txn, row)

    # --- gang jobs -----------------------------------------------------------------------------
    def rank_report(self, txn: Txn, row: JobRec, run: GangRun, rep: v1.Report) -> None:
        """A report of a rank other than 0 (rank 0's is the job's own): running marks the job running
        if rank 0 has not yet; an end goes to :meth:`rank_finished`."""
        if isinstance(rep, v1.RunFinished):
            self.rank_finished(txn, row, run, rep)
        elif isinstance(rep, v1.RunRunning) and row.state == S.STARTING.value:
            txn.transition(row, S.RUNNING, None, at=rep.at)
            self.mark_running(row.id)

    def mark_running(self, job_id: str) -> None:
        run = self.cluster.gang_runs.get(job_id)
        for name in run.nodes if run is not None else []:
            node = self.cluster.nodes.get(name)
            rank = node.running.get(job_id) if node is not None else None
            if rank is not None and not rank.running:
                rank.since, rank.running = time.monotonic(), True

    def rank_finished(self, txn: Txn, row: JobRec, run: GangRun, rep: v1.RunFinished) -> None:
        """A rank ended. Success: its slot is free, and the job succeeds with its last rank. Anything
        else ends the gang: every other rank is asked to stop and the job ends (or is retried as a
        whole) naming the rank and why."""
        rank = run.nodes.index(rep.node)
        if rep.artifacts:  # every rank's outputs are the job's (rank r > 0's named rank<r>/...)
            kept = v1.decode(row.artifacts, list[v1.Artifact]) if row.artifacts else []
            mine = {a.name for a in rep.artifacts}
            rep = msgspec.structs.replace(
                rep, artifacts=[*(a for a in kept if a.name not in mine), *rep.artifacts]
            )
            row.artifacts = v1.encode(rep.artifacts)
        if rep.outcome is S.SUCCEEDED:
            self.cluster.finish_rank(row.id, rep.node)
            row.gang = gang.record(run.nodes, [n for n in run.nodes if n not in run.left])
            if run.left:
                return
            self.finished(txn, row, msgspec.structs.replace(rep, node=run.nodes[0]))
            return
        others = sorted(run.left - {rep.node})
        if others and (row.id, row.attempt) not in self.stop_asked:
            why = f"rank {rank} {_ended(rep.outcome, rep.exit_code)}"
            for name in others:
                self.ask_stop_one(txn, row.id, row.attempt, name, S.CANCELLED, f"{why}; stopping the gang")
        reason = gang.end_reason(rank, rep.node, rep.outcome, rep.exit_code, rep.reason, stopped=len(others))
        self.finished(txn, row, msgspec.structs.replace(rep, node=run.nodes[0], reason=reason))

    def dispatch_gangs(self, txn: Txn, now: float) -> None:
        """Start each waiting gang whose ranks all fit now on nodes of one backend, all at once; a gang
        that does not fit keeps nodes reserved until it does, in priority order, so a stream of small
        jobs cannot starve it: a kept node takes only jobs that cannot delay the gang (backfill)."""
        taken: set[str] = set()
        for job in sorted(self.cluster.gangs.values(), key=lambda j: j.key):
            if job.not_before > now:
                continue
            nodes = [n for n in self.cluster.nodes.values() if n.up and n.name not in taken]
            assert job.gang is not None  # only gangs wait in ``cluster.gangs``
            chosen = gang.free_nodes(job.gang, nodes, now, job.owner)
            row = txn.rows.get(job.id)
            if chosen is not None and row is not None:
                self.cluster.remove_queued(job.id)
                self.start_gang(txn, row, job, chosen)
                continue
            kept = gang.reservation(job.gang, nodes, self.cluster.reserved.get(job.id), now, job.owner)
            if kept:
                self.cluster.reserved[job.id] = kept
                taken.update(kept)
            else:
                self.cluster.reserved.pop(job.id, None)

    def backfill(self, node: NodeState, held: QueuedJob, now: float) -> list[QueuedJob]:
        """What may start on ``node`` while it is kept for the gang ``held`` (``gang.backfill``)."""
        kept = [
            self.cluster.nodes[n] for n in self.cluster.reserved.get(held.id, []) if n in self.cluster.nodes
        ]
        assert held.gang is not None
        start = gang.start_in(held.gang, kept, now)
        room = max(0, node.capacity.slots - len(node.running))
        return gang.backfill(node, held, start, now, self.cluster.fair, room) if room else []

    def start_gang(self, txn: Txn, row: JobRec, job: QueuedJob, nodes: list[NodeState]) -> None:
        """Dispatch every rank of the gang in this one transaction: all or nothing."""
        row.attempt += 1
        row.node = nodes[0].name
        row.backend = nodes[0].backend
        row.dispatched_at = txn.at
        row.started_at = None
        row.exit_code = None
        row.not_before = None
        row.reason = None
        names = [n.name for n in nodes]
        txn.transition(row, S.STARTING, f"dispatched {len(nodes)} ranks to {', '.join(names)}")
        row.artifacts = None  # gathered from this attempt's ranks as they end
        mono = time.monotonic()
        assert job.gang is not None
        res, expected = job.resources, job.expected_runtime
        runs = [
            RunningJob(row.id, row.attempt, res, expected, mono, row.timeout, owner=job.owner) for _ in nodes
        ]
        self.cluster.start_gang(names, runs)
        row.gang = gang.record(names)
        hosts = [n.capacity.address or n.name for n in nodes]
        port = master_port(row.id, row.attempt)
        with telemetry.span_from(job.trace, TRACER, "scheduler.dispatch", job_id=row.id, node=names[0]):
            headers = telemetry.inject()
        for rank, node in enumerate(nodes):
            ranked = v1.Gang(
                rank=rank, world_size=len(nodes), master_addr=hosts[0], master_port=port, hosts=hosts
            )
            msg = v1.RunJob(
                job_id=row.id,
                attempt=row.attempt,
                node=node.name,
                spec=job.gang,
                owner=row.owner,
                timeout=row.timeout,
                gang=ranked,
            )
            msg_id = sj.attempt_msg_id(row.id, row.attempt, "run", rank)
            txn.emit(sj.exec_subject(node.name, "run"), msg, msg_id, headers)

    def stale(self, txn: Txn, rep: v1.Report, row: JobRec | None) -> None:
        """A report from an attempt that is no longer current: ignore it, and stop that run."""
        if isinstance(rep, v1.RunFinished):
            return
        if (rep.job_id, rep.attempt) in self.stop_asked:
            return
        if row is None or rep.attempt < row.attempt or row.node != rep.node or v1.is_finished(S(row.state)):
            log.info("stale run %s attempt %s on %s: asking to stop it", rep.job_id, rep.attempt, rep.node)
            self.ask_stop(txn, rep.job_id, rep.attempt, rep.node, S.LOST, "stale attempt")

    def lose(self, txn: Txn, row: JobRec, reason: str) -> None:
        """The run is gone: record ``lost``, then queue again while attempts remain."""
        self.cluster.finish(row.id)
        txn.transition(row, S.LOST, reason)
        if row.cancel_requested:
            txn.transition(row, S.QUEUED, "requeued to be cancelled")
            txn.transition(row, S.CANCELLED, "cancelled while its node was lost")
        elif self.retries(row, S.LOST):
            self.retry(txn, row, None)
        else:
            row.ended_at = txn.at
            txn.ended.append(row.id)  # lost for good: its dependents learn it now

    def retries(self, row: JobRec, outcome: v1.JobState) -> bool:
        """Whether an attempt that ended ``outcome`` is followed by another: attempts are left, nobody
        asked to stop the job, and its ``retry`` covers the outcome (without one, only a lost run is
        retried, up to ``max_attempts``)."""
        if row.cancel_requested or row.delete_requested or row.attempt >= row.max_attempts:
            return False
        if self.arrays.is_cancelled(row.array_id):
            return False
        retry = v1.decode(row.spec, v1.JobSpec).retry
        return outcome is S.LOST if retry is None else retry.applies(outcome.value, row.exit_code)

    def retry(self, txn: Txn, row: JobRec, why: str | None) -> None:
        """Queue the job for its next attempt after its backoff. Its queue key (priority, id) is the one
        it was submitted with, so it keeps its place among its owner's jobs."""
        spec = self.spec_of(txn, row)
        delay = spec.retry.delay(row.attempt) if spec.retry is not None else 0.0
        row.not_before = txn.at + timedelta(seconds=delay) if delay > 0 else None
        row.ended_at = None
        position = self.place(txn, row, self.queued_job(row, spec), spec)
        what = f"retry {row.attempt + 1} of {row.max_attempts}" + (f" in {delay:g} s" if delay > 0 else "")
        what = f"{why}; {what}" if why else what
        txn.transition(row, S.QUEUED, _and_why(what, row.reason), queue_position=position)

    # --- dispatch ------------------------------------------------------------------------------
    def dispatch_candidates(self) -> set[str]:
        """Jobs that could start now, in the order ``dispatch`` will take them (fair share between
        owners, as if each started), to load their rows in one query."""
        out: set[str] = set()
        now = time.monotonic()
        fair = self.cluster.fair
        fair.advance(now)
        extra: dict[str, float] = {}
        for node in self.cluster.nodes.values():
            if not node.up:
                continue
            held = self.cluster.reserved_for(node.name)
            if held is not None:
                out.update(j.id for j in self.backfill(node, held, now))
                continue
            for _ in range(max(0, node.capacity.slots - len(node.running))):
                job = node.pick(now, fair, extra, out)
                if job is None:
                    break
                out.add(job.id)
                extra[job.owner] = extra.get(job.owner, 0.0) + units(job.resources)
        out.update(self.cluster.gangs)  # few: each may find its nodes free in this round
        return out

    def materialise(
        self, txn: Txn, headroom: dict[str, int | None], gpu_room: dict[str, int | None] | None = None
    ) -> None:
        """Make the next tasks of arrays that may grow, queued and placed like new jobs, within their
        owners' room under ``max_active`` and ``max_gpus`` (``quotas.active_headroom``, ``gpu_headroom``)."""
        for array, n in self.arrays.wanted(headroom, gpu_room):
            for offset in range(array.materialised, array.materialised + n):
                row = self.arrays.make_task(txn, array, offset)
                row.expected_runtime = self.expected(array.spec)
                row.timeout = array.spec.timeout_seconds()
                position = self.place(txn, row, self.queued_job(row, array.spec), array.spec)
                txn.first_transition(row, position)
            array.materialised += n
            txn.array_updates.setdefault(array.id, {})["materialised"] = array.materialised

    def dispatch(self, txn: Txn) -> None:
        """Start queued jobs wherever a slot is free: each slot goes to the owner with the lowest load
        per share (``fairshare``), and within an owner to its first job by priority then submit order
        (passing over jobs that wait out a retry's backoff)."""
        now = time.monotonic()
        fair = self.cluster.fair
        fair.advance(now)
        if self.cluster.gangs:
            self.dispatch_gangs(txn, now)
        native: dict[tuple[str, str], list[tuple[v1.RunJob, dict[str, str]]]] = {}
        for node in self.cluster.nodes.values():
            held = self.cluster.reserved_for(node.name) if node.up else None
            if held is not None:
                for small in self.backfill(node, held, now):
                    row = txn.rows.get(small.id)
                    if row is not None:
                        node.dequeue(small.id)
                        self.cluster.queued_on.pop(small.id, None)
                        self.start(txn, node, row, small)
                continue
            while node.up:
                job = node.pick(now, fair)
                if job is None or not node.fits_now(job.resources):
                    break
                row = txn.rows.get(job.id)
                if row is None:  # not loaded: next batch
                    break
                node.dequeue(job.id)
                self.cluster.queued_on.pop(job.id, None)
                self.start(txn, node, row, job, native)
        for (node_name, array_id), runs in native.items():
            self.emit_array(txn, node_name, array_id, runs)

    def emit_array(
        self, txn: Txn, node: str, array_id: str, runs: list[tuple[v1.RunJob, dict[str, str]]]
    ) -> None:
        """The tasks of one array dispatched to one node in this batch, as one ``RunArray``: the
        executor submits them as one native array job. Its message id names the first task's attempt,
        so a batch that is redone publishes the same message."""
        first = runs[0][0]
        work = v1.RunArray(job_id=array_id, node=node, runs=[r for r, _ in runs])
        msg_id = sj.attempt_msg_id(first.job_id, first.attempt, "run-array", len(runs))
        txn.emit(sj.exec_subject(node, "run"), work, msg_id, runs[0][1])

    def start(
        self,
        txn: Txn,
        node: NodeState,
        row: JobRec,
        job: QueuedJob,
        native: dict[tuple[str, str], list[tuple[v1.RunJob, dict[str, str]]]] | None = None,
    ) -> None:
        row.attempt += 1
        row.node = node.name
        row.backend = node.backend
        row.dispatched_at = txn.at
        row.started_at = None
        row.exit_code = None
        row.not_before = None
        txn.transition(row, S.STARTING, f"dispatched to {node.name}")
        self.cluster.start(
            node.name,
            RunningJob(
                row.id,
                row.attempt,
                job.resources,
                job.expected_runtime,
                time.monotonic(),
                row.timeout,
                owner=job.owner,
            ),
        )
        run = v1.RunJob(
            job_id=row.id,
            attempt=row.attempt,
            node=node.name,
            spec=self.spec_of(txn, row),
            owner=row.owner,
            timeout=row.timeout,
        )
        if row.array_id is not None:
            run.array_id, run.array_index = row.array_id, row.array_index
            run.array_count = self.arrays.count_of(row.array_id)
        with telemetry.span_from(job.trace, TRACER, "scheduler.dispatch", job_id=row.id, node=node.name):
            headers = telemetry.inject()
        if (
            native is not None
            and row.array_id is not None
            and node.capacity.native_arrays
            and self.arrays.is_native(row.array_id)
        ):
            run.array_parallelism = self.arrays.parallelism_of(row.array_id)
            native.setdefault((node.name, row.array_id), []).append((run, headers))
            return
        txn.emit(
            sj.exec_subject(node.name, "run"), run, sj.attempt_msg_id(row.id, row.attempt, "run"), headers
        )

    # --- liveness and timeouts -----------------------------------------------------------------
    def node_down(self, txn: Txn, node: NodeState) -> None:
        """Move its queued jobs elsewhere and lose its running ones."""
        node.up = False
        node.down_since = txn.at
        moved = list(node.queued.values())
        for job in moved:
            self.cluster.remove_queued(job.id)
        for job in moved:
            row = txn.rows.get(job.id)
            if row is not None:
                self.place(txn, row, job)
        for job_id, run in list(node.running.items()):
            row = txn.rows.get(job_id)
            ranks = self.cluster.gang_runs.get(job_id)
            if row is not None and ranks is not None and row.attempt == ranks.attempt and self.on_node(row):
                self.gang_lost(txn, row, ranks, node.name)
            elif row is not None and row.attempt == run.attempt and self.on_node(row):
                self.lose(txn, row, f"node {node.name} stopped answering")
            else:
                self.cluster.finish(job_id)

    def gang_lost(self, txn: Txn, row: JobRec, run: GangRun, lost: str) -> None:
        """A node of a running gang stopped answering: the other ranks are stopped, the job is lost
        (and retried as a whole while attempts remain) naming the rank."""
        rank = run.nodes.index(lost)
        for name in sorted(run.left - {lost}):
            why = f"rank {rank}'s node {lost} stopped answering; stopping the gang"
            self.ask_stop_one(txn, row.id, row.attempt, name, S.LOST, why)
        self.stop_asked[(row.id, row.attempt)] = time.monotonic()
        self.lose(txn, row, f"rank {rank}: node {lost} stopped answering; the other ranks were stopped")

    def node_up(self, txn: Txn) -> None:
        """Place pending jobs now that a node appeared or came back."""
        for job in list(self.cluster.pending.values()):
            row = txn.rows.get(job.id)
            if row is not None and row.state == S.QUEUED.value:
                self.place(txn, row, job)

    def overdue(self, now_mono: float) -> list[tuple[str, float]]:
        """Running jobs past their timeout plus grace: (job id, seconds over)."""
        out = []
        for node in self.cluster.nodes.values():
            for run in node.running.values():
                limit = run.timeout
                if (
                    run.running
                    and limit is not None
                    and now_mono - run.since > limit + self.settings.timeout_grace
                ):
                    out.append((run.id, now_mono - run.since - limit))
        return out

    def backstop(self, txn: Txn, job_id: str, over: float) -> None:
        row = txn.rows.get(job_id)
        if row is None or S(row.state) not in v1.ON_NODE or not row.node:
            self.cluster.finish(job_id)
            return
        asked = self.stop_asked.get((job_id, row.attempt))
        if asked is None:
            self.ask_stop(txn, job_id, row.attempt, row.node, S.TIMED_OUT, "walltime exceeded")
        elif time.monotonic() - asked > self.settings.timeout_grace:
            self.cluster.finish(job_id)
            txn.transition(row, S.TIMED_OUT, "walltime exceeded; the executor did not stop it in time")


def started_since(row: JobRec, at: datetime) -> float:
    """Seconds since the row's run started (or was dispatched), for rebuilding the view on restart."""
    ref = row.started_at or row.dispatched_at or at
    return max(0.0, (at - ref).total_seconds())


def _ended(outcome: v1.JobState, exit_code: int | None) -> str:
    """``failed (exit code 3)``, ``timed out``: how an attempt ended, for the reason of its retry."""
    text = outcome.value.replace("_", " ")
    return f"{text} (exit code {exit_code})" if exit_code is not None else text


def _attempts_left(row: JobRec) -> bool:
    """Whether a ``lost`` job runs again: one that will not is given its end time when lost."""
    return row.ended_at is None


def _and_why(what: str, why: str | None) -> str:
    """``what`` happened, and why the job still waits when placement said so (``released; node X is
    down since ...``)."""
    return f"{what}; {why}" if why else what
