"""Job arrays: one row until their tasks are scheduled, tasks made as capacity and parallelism allow.

An array is stored once (``ArrayRow``: its spec and a counter of tasks made so far). Each batch, after
the commands and reports, ``materialise`` turns as many of the next indices into task jobs as the
array may have alive (queued, held, starting or running) at once: its ``parallelism``, and never more
than twice the slots its eligible nodes have, so 100,000 waiting tasks cost one row and a later job
of another owner waits behind one round of tasks, not behind the whole array. A task is then a job
like any other (placement, dispatch, retries, cancel); only its end is counted here.

An array whose eligible nodes all run arrays natively (``NodeCapacity.native_arrays``: SLURM, SGE,
Torque, LSF executors) is made in chunks instead: one round of its nodes' slots at a time, the next
only once every task of the previous one has ended, and its parallelism is left to the batch system
(the chunk's tasks are dispatched together as one ``RunArray`` and become one native array job
throttled to ``parallelism``), so there is one native job of the array at a time and never more
than ``parallelism`` of its tasks run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from jobwire.contracts import v1
from jobwire.contracts.v1 import feasibility
from jobwire.contracts.v1 import subjects as sj
from jobwire.store.jobrecs import JobRec
from jobwire.store.models import ArrayRow

from .cluster import Cluster
from .placement import eligible
from .txn import Txn

log = logging.getLogger(__name__)
S = v1.JobState
#: how many rounds of its nodes' slots an array without ``parallelism`` keeps made ahead
ROUNDS_AHEAD = 2


@dataclass
class ArrayState:
    """What the scheduler keeps of an array that has tasks to make or tasks alive."""

    id: str
    owner: str
    spec: v1.JobSpec
    spec_bytes: bytes
    count: int
    start: int
    parallelism: int | None
    materialised: int
    priority: int
    held: bool
    cancelled: bool
    created_at: datetime
    #: tasks made and not finished
    live: set[str] = field(default_factory=set)
    #: tasks that ended other than ``succeeded`` (a set: a requeued one is taken out again)
    unsuccessful: set[str] = field(default_factory=set)

    @property
    def made_all(self) -> bool:
        return self.materialised >= self.count

    @property
    def done(self) -> bool:
        return not self.live and (self.made_all or self.cancelled)


def task_finished(row: JobRec) -> bool:
    return S(row.state) in v1.TERMINAL or S(row.state) is S.LOST


class Arrays:
    """Open arrays (tasks to make or alive), rebuilt from the database with the rest of the view."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.open: dict[str, ArrayState] = {}

    # --- commands ------------------------------------------------------------------------------
    def submit(self, txn: Txn, cmd: v1.SubmitJob) -> None:
        """Store the array as one row; its tasks are made by ``materialise``."""
        assert cmd.spec.array is not None
        if cmd.job_id in txn.arrays or cmd.job_id in self.open:
            return  # a redelivered submit
        spec = v1.JobSpec(**{f: getattr(cmd.spec, f) for f in v1.JobSpec.__struct_fields__ if f != "array"})
        array = cmd.spec.array
        row = ArrayRow(
            id=cmd.job_id,
            owner=cmd.owner,
            name=spec.name,
            spec=v1.encode(spec),
            count=array.count,
            start=array.start,
            parallelism=array.parallelism,
            materialised=0,
            priority=spec.priority,
            held=False,
            cancelled=False,
            created_at=cmd.submitted_at or txn.at,
        )
        txn.session.add(row)
        txn.arrays[row.id] = row
        self.open[row.id] = self.state_of(row, spec)
        reason = f"array of {array.count} tasks" + (
            f", at most {array.parallelism} at once" if array.parallelism else ""
        )
        # the array's own ``queued`` event: the gateway's submit waits for it like a job's
        event = v1.JobTransitioned(
            job_id=row.id, state=S.QUEUED, previous=None, at=row.created_at, reason=reason, owner=row.owner
        )
        txn.emit(sj.event_subject(row.id, S.QUEUED.value), event, sj.attempt_msg_id(row.id, 0, "queued"))

    def live_tasks(self, array_id: str) -> set[str]:
        array = self.open.get(array_id)
        return set(array.live) if array is not None else set()

    def set_flag(self, txn: Txn, array_id: str, **flags: bool) -> ArrayState | None:
        """Set ``held`` or ``cancelled`` on an open array (in memory and in its row)."""
        array = self.open.get(array_id)
        if array is None:
            return None
        for name, value in flags.items():
            setattr(array, name, value)
        txn.array_updates.setdefault(array_id, {}).update(flags)
        return array

    def is_cancelled(self, array_id: str | None) -> bool:
        array = self.open.get(array_id) if array_id else None
        return array is not None and array.cancelled

    def count_of(self, array_id: str) -> int | None:
        array = self.open.get(array_id)
        return array.count if array is not None else None

    # --- each batch ----------------------------------------------------------------------------
    def settle(self, txn: Txn) -> None:
        """Count the tasks that ended in this batch; close arrays with nothing left to do."""
        for row in txn.tasks_touched.values():
            array = self.open.get(row.array_id or "")
            if array is None:
                continue
            if task_finished(row):
                array.live.discard(row.id)
                if S(row.state) is not S.SUCCEEDED:
                    array.unsuccessful.add(row.id)
            else:  # alive, or a finished task requeued
                array.live.add(row.id)
                array.unsuccessful.discard(row.id)
        for row, _ in txn.deleted:
            array = self.open.get(row.array_id or "")
            if array is not None:
                array.live.discard(row.id)
        txn.tasks_touched.clear()
        for array in list(self.open.values()):
            if array.done:
                self.close(txn, array)

    def close(self, txn: Txn, array: ArrayState) -> None:
        del self.open[array.id]
        txn.array_updates.setdefault(array.id, {})["ended_at"] = txn.at
        state = S.FAILED if array.unsuccessful else S.SUCCEEDED
        state = S.CANCELLED if array.cancelled else state
        reason = f"{array.count - len(array.unsuccessful)} of {array.count} tasks succeeded"
        if array.cancelled:
            reason = f"cancelled; {reason}"
        txn.array_ends[array.id] = state
        txn.ended.append(array.id)  # jobs waiting for the array learn how it ended
        event = v1.JobTransitioned(
            job_id=array.id, state=state, previous=None, at=txn.at, reason=reason, owner=array.owner
        )
        txn.emit(sj.event_subject(array.id, state.value), event, sj.attempt_msg_id(array.id, 0, state.value))

    def native(self, array: ArrayState) -> bool:
        """Whether the array's tasks run as native array jobs: every node it may use runs arrays
        natively (a mixed set keeps jobwire's own parallelism)."""
        nodes = [n for n in self.cluster.nodes.values() if eligible(n, array.spec, array.owner)]
        return bool(nodes) and all(n.capacity.native_arrays for n in nodes)

    def is_native(self, array_id: str | None) -> bool:
        array = self.open.get(array_id) if array_id else None
        return array is not None and self.native(array)

    def parallelism_of(self, array_id: str) -> int | None:
        array = self.open.get(array_id)
        return array.parallelism if array is not None else None

    def window(self, array: ArrayState) -> int:
        """How many of its tasks may be alive at once now."""
        slots = sum(
            feasibility.usable_slots(n.capacity, array.spec.resources)
            for n in self.cluster.nodes.values()
            if eligible(n, array.spec, array.owner)
        )
        if self.native(array):
            # the next chunk (one round of slots) only once the previous native job's tasks all ended
            return len(array.live) if array.live else max(1, slots)
        room = max(1, ROUNDS_AHEAD * slots)
        return room if array.parallelism is None else min(room, array.parallelism)

    def growing(self) -> list[ArrayState]:
        """Arrays that may make tasks now, oldest first (their owners' quota is read for them)."""
        out = []
        for array_id in sorted(self.open):
            array = self.open[array_id]
            if array.held or array.cancelled or array.made_all:
                continue
            full = array.parallelism is not None and len(array.live) >= array.parallelism
            if full and not self.native(array):
                continue  # full: no need to weigh the nodes (a native array's batch system throttles)
            out.append(array)
        return out

    def wanted(
        self, headroom: dict[str, int | None], gpu_room: dict[str, int | None] | None = None
    ) -> list[tuple[ArrayState, int]]:
        """(array, how many tasks to make) for each array that may grow now: within its window, and
        within its owner's ``headroom`` under ``max_active`` and ``gpu_room`` under ``max_gpus`` (None:
        no limit), which it uses up."""
        out = []
        for array in self.growing():
            n = min(self.window(array) - len(array.live), array.count - array.materialised)
            room = headroom.get(array.owner)
            if room is not None:
                n = min(n, room)
            gpus = array.spec.resources.gpus_total
            free_gpus = (gpu_room or {}).get(array.owner) if gpus else None
            if free_gpus is not None:
                n = min(n, free_gpus // gpus)
            n = max(0, n)
            if room is not None:
                headroom[array.owner] = room - n
            if free_gpus is not None and gpu_room is not None:
                gpu_room[array.owner] = free_gpus - n * gpus
            if n > 0:
                out.append((array, n))
        return out

    def make_task(self, txn: Txn, array: ArrayState, offset: int) -> JobRec:
        """The job of task ``start + offset``, queued as the array was submitted."""
        index = array.start + offset
        spec = array.spec
        row = JobRec(
            id=v1.array_task_id(array.id, offset),
            owner=array.owner,
            name=spec.name,
            state=S.QUEUED.value,
            backend=spec.backend,
            attempt=0,
            max_attempts=spec.max_attempts,
            priority=array.priority,
            spec=array.spec_bytes,
            created_at=array.created_at,
            cancel_requested=False,
            delete_requested=False,
            array_id=array.id,
            array_index=index,
        )
        txn.add(row, spec.labels)
        array.live.add(row.id)
        return row

    @staticmethod
    def state_of(row: ArrayRow, spec: v1.JobSpec | None = None) -> ArrayState:
        spec = spec or v1.decode(row.spec, v1.JobSpec)
        return ArrayState(
            id=row.id,
            owner=row.owner,
            spec=spec,
            spec_bytes=row.spec,
            count=row.count,
            start=row.start,
            parallelism=row.parallelism,
            materialised=row.materialised,
            priority=row.priority,
            held=row.held,
            cancelled=row.cancelled,
            created_at=row.created_at,
        )
