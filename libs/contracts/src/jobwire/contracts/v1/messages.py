"""Messages on the bus: commands, work for executors, executor reports, events, logs, heartbeats.

Each family is a tagged union on one field so any NATS client can tell them apart.
New fields get defaults; field types never change; unknown fields are ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from .access import AuditRecord, CreateToken, RecordAudit, RevokeToken, TouchTokens
from .job import Artifact, GpuInfo, NodeCapacity, Usage
from .spec import JobSpec
from .states import JobState

# --- commands: anyone -> scheduler, on jobwire.cmd.<type> ---------------------------------------


class SubmitJob(msgspec.Struct, kw_only=True, tag="submit", tag_field="type"):
    job_id: str
    spec: JobSpec
    owner: str = "anonymous"
    submitted_at: datetime | None = None
    #: the audit record of the request that made this submit, written with the job in the scheduler's
    #: transaction: one message per submit instead of a second one for the audit log
    audit: AuditRecord | None = None


class SubmitJobs(msgspec.Struct, kw_only=True, tag="submit_batch", tag_field="type"):
    """Many jobs stored together or not at all (``POST /v1/jobs:batch``); each has its own id."""

    batch_id: str
    jobs: list[SubmitJob]


class SubmitWorkflow(msgspec.Struct, kw_only=True, tag="submit_workflow", tag_field="type"):
    """A workflow's jobs stored together or not at all (``POST /v1/workflows``), dependencies first;
    their ``after`` already names job ids. Its events follow the commit, so the last job's ``queued``
    event means all of it is stored."""

    workflow_id: str
    jobs: list[SubmitJob]
    name: str | None = None
    owner: str = "anonymous"
    submitted_at: datetime | None = None


class CancelJob(msgspec.Struct, kw_only=True, tag="cancel", tag_field="type"):
    job_id: str
    reason: str = "cancelled by user"
    requested_by: str | None = None


class DeleteJob(msgspec.Struct, kw_only=True, tag="delete", tag_field="type"):
    job_id: str
    requested_by: str | None = None


class HoldJob(msgspec.Struct, kw_only=True, tag="hold", tag_field="type"):
    job_id: str
    reason: str = "held by user"


class ReleaseJob(msgspec.Struct, kw_only=True, tag="release", tag_field="type"):
    job_id: str


class RequeueJob(msgspec.Struct, kw_only=True, tag="requeue", tag_field="type"):
    """Run a running or finished job again as a new attempt."""

    job_id: str
    reason: str = "requeued by user"
    requested_by: str | None = None


JobCommand = SubmitJob | CancelJob | DeleteJob | HoldJob | ReleaseJob | RequeueJob
Command = JobCommand | SubmitJobs | SubmitWorkflow | RecordAudit | CreateToken | RevokeToken | TouchTokens

# --- work: scheduler -> one node, on jobwire.exec.<node>.<type> ---------------------------------


class Gang(msgspec.Struct, kw_only=True):
    """One rank of a gang (``resources.nodes`` > 1): the ranks start together, one per node, and
    find each other at rank 0's ``master_addr:master_port`` (torch.distributed's env:// rendezvous)."""

    rank: int
    world_size: int
    master_addr: str
    master_port: int
    #: every rank's address, in rank order
    hosts: list[str] = []


class RunJob(msgspec.Struct, kw_only=True, tag="run", tag_field="type"):
    job_id: str
    attempt: int
    node: str
    spec: JobSpec
    owner: str = "anonymous"
    timeout: float | None = None
    #: a task of an array: seen by the job as JOBWIRE_ARRAY_ID, _INDEX and _COUNT
    array_id: str | None = None
    array_index: int | None = None
    array_count: int | None = None
    #: a task of an array run as a native array job: at most this many of the array's tasks run at
    #: once, enforced by the batch system (``--array ...%P``, ``-tc P``); None: no limit
    array_parallelism: int | None = None
    #: one rank of a gang job; None for a job on one node
    gang: Gang | None = None


class RunArray(msgspec.Struct, kw_only=True, tag="run_array", tag_field="type"):
    """Tasks of one array dispatched together to a node that runs arrays natively (its capacity says
    ``native_arrays``): the executor submits them as one native array job (``sbatch --array``,
    ``qsub -t``). Each task is still its own attempt with its own reports; ``job_id`` is the array's."""

    job_id: str
    node: str
    runs: list[RunJob]
    attempt: int = 0


class CancelRun(msgspec.Struct, kw_only=True, tag="cancel", tag_field="type"):
    job_id: str
    attempt: int
    node: str
    #: what the executor reports once the run is stopped: cancelled, timed_out, lost for stale runs,
    #: or queued for a requeue
    outcome: JobState = JobState.CANCELLED
    reason: str = "cancelled by user"
    grace: float = 10.0


class HoldRun(msgspec.Struct, kw_only=True, tag="hold", tag_field="type"):
    """Hold (or with ``release``, release) an attempt its batch system still queues."""

    job_id: str
    attempt: int
    node: str
    release: bool = False


class PurgeJob(msgspec.Struct, kw_only=True, tag="purge", tag_field="type"):
    """The job was deleted: remove every attempt directory it has on this node's storage (its
    ``run.json`` holds the job's environment). ``attempt`` is the last one the job had."""

    job_id: str
    attempt: int
    node: str


Work = RunJob | RunArray | CancelRun | HoldRun | PurgeJob

# --- reports: executor -> scheduler, on jobwire.report.<node>.<job>.<kind> ----------------------


class RunStarting(msgspec.Struct, kw_only=True, tag="starting", tag_field="kind"):
    """The attempt is launched but does not run yet; sent again whenever ``reason`` or ``held`` changes."""

    job_id: str
    attempt: int
    node: str
    at: datetime
    #: why it waits, as its backend says (``pending in slurm: Resources``)
    reason: str | None = None
    #: held in its batch system (by a hold request or the system's own hold)
    held: bool = False
    #: what the backend already knows of the launch (``batch_id`` once the batch system gave one)
    details: dict[str, Any] = {}


class RunRunning(msgspec.Struct, kw_only=True, tag="running", tag_field="kind"):
    job_id: str
    attempt: int
    node: str
    at: datetime
    ports: dict[str, str] = {}
    details: dict[str, Any] = {}


class RunFinished(msgspec.Struct, kw_only=True, tag="finished", tag_field="kind"):
    job_id: str
    attempt: int
    node: str
    at: datetime
    outcome: JobState
    exit_code: int | None = None
    reason: str | None = None
    usage: Usage | None = None
    artifacts: list[Artifact] = []


Report = RunStarting | RunRunning | RunFinished


class RunReports(msgspec.Struct, kw_only=True, tag="reports", tag_field="kind"):
    """Reports of one node sent together, on ``jobwire.report.<node>.batch``: an executor puts what it
    reports while its previous publish awaits the stream's ack in one message, so a busy node costs the
    stream and the scheduler one message per round trip, not one per report. The scheduler applies them
    in order, as if each had come alone (its handlers are idempotent: a resent group is harmless)."""

    node: str
    reports: list[Report]
    #: each report's trace context (``traceparent``...), aligned with ``reports``; empty when none
    traces: list[dict[str, str]] = []


#: what arrives on the report subjects: one report, or several together
ReportMessage = Report | RunReports

# --- events: scheduler/executors -> anyone, on jobwire.evt.job.<job>.<kind> ---------------------


class JobTransitioned(msgspec.Struct, kw_only=True, tag="transition", tag_field="kind"):
    """One per accepted state change, published after the change is committed."""

    job_id: str
    state: JobState
    previous: JobState | None
    at: datetime
    attempt: int = 0
    node: str | None = None
    reason: str | None = None
    exit_code: int | None = None
    queue_position: int | None = None
    owner: str | None = None


class JobProgress(msgspec.Struct, kw_only=True, tag="progress", tag_field="kind"):
    """What the job last wrote to ``$JOBWIRE_PROGRESS_FILE``."""

    job_id: str
    attempt: int
    at: datetime
    progress: Any = None


class JobDeleted(msgspec.Struct, kw_only=True, tag="deleted", tag_field="kind"):
    job_id: str
    at: datetime


Event = JobTransitioned | JobProgress | JobDeleted

# --- logs: executor -> anyone, on jobwire.log.<job>.<stream> ------------------------------------


class LogChunk(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A piece of stdout or stderr; ``offset`` is the byte offset in that attempt's stream."""

    job_id: str
    attempt: int
    stream: str
    offset: int
    data: str = ""
    eof: bool = False


# --- nodes: executor -> scheduler, on jobwire.node.<node>.heartbeat -----------------------------


class RunRef(msgspec.Struct, kw_only=True, array_like=False):
    job_id: str
    attempt: int


class NodeHeartbeat(msgspec.Struct, kw_only=True, omit_defaults=True):
    node: str
    backend: str
    capacity: NodeCapacity
    at: datetime
    instance: str
    interval: float = 2.0
    labels: dict[str, str] = {}
    pool: str | None = None
    version: str | None = None
    running: list[RunRef] = []
    gpus: list[GpuInfo] = []
    draining: bool = False
