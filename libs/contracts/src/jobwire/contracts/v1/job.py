"""What the system knows about a job and a node, as the API and the bus show it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from .spec import JobSpec
from .states import JobState


class TransitionRecord(msgspec.Struct, kw_only=True):
    state: JobState
    at: datetime
    reason: str | None = None
    attempt: int = 0


class Usage(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Resource use as accounting reports it; fields a backend cannot give stay unset."""

    wall_seconds: float | None = None
    cpu_seconds: float | None = None
    max_rss_bytes: int | None = None
    mem_cpu_seconds: float | None = None
    io_read_bytes: int | None = None
    io_write_bytes: int | None = None
    node_list: list[str] | None = None
    #: peak virtual memory (SGE ``maxvmem``, SLURM ``MaxVMSize``)
    max_vmem_bytes: int | None = None
    #: bytes read and written together, where accounting gives no split (SGE ``io``)
    io_bytes: int | None = None


class Artifact(msgspec.Struct, kw_only=True):
    name: str
    size: int
    digest: str | None = None


class AttemptRecord(msgspec.Struct, kw_only=True):
    """How one attempt of a job went (its logs: ``/v1/jobs/{id}/logs?attempt=N``)."""

    attempt: int
    state: JobState
    node: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


class Job(JobSpec, kw_only=True, omit_defaults=False):
    """A submitted job: its spec plus what happened to it."""

    id: str
    owner: str = "anonymous"
    state: JobState = JobState.QUEUED
    reason: str | None = None
    attempt: int = 0
    #: queued on a node: the jobs expected to start before it (its owner's own ahead, and the other
    #: owners' by fair share; 0: the next slot is its own)
    queue_position: int | None = None
    #: queued on a node: when it is expected to start (the running jobs' expected runtimes and the
    #: queue ahead played forward); an estimate, read fresh with the job
    estimated_start: datetime | None = None
    exit_code: int | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    transitions: list[TransitionRecord] = []
    usage: Usage | None = None
    artifacts: list[Artifact] = []
    ports: dict[str, str] = {}
    details: dict[str, Any] = {}
    #: set on a task of an array: the array's id and this task's index in it
    array_id: str | None = None
    array_index: int | None = None
    #: every attempt so far, oldest first (a retried job has one per run)
    attempts: list[AttemptRecord] = []
    #: a job waiting out a retry's backoff is not started before this time
    not_before: datetime | None = None


class ArrayTask(msgspec.Struct, kw_only=True):
    """One task of an array; ``job_id`` is None until the scheduler has made its job."""

    index: int
    state: JobState
    job_id: str | None = None
    attempt: int = 0
    node: str | None = None
    exit_code: int | None = None
    reason: str | None = None


class ArrayView(msgspec.Struct, kw_only=True):
    """An array (``GET /v1/arrays/{id}``): its counts by state over every task, and a page of tasks."""

    id: str
    owner: str
    name: str | None
    count: int
    start: int
    parallelism: int | None
    #: tasks made into jobs so far (the rest wait as one row, counted ``queued``, ``held`` or
    #: ``cancelled`` as the array is)
    materialised: int
    held: bool
    cancelled: bool
    done: bool
    counts: dict[str, int]
    created_at: datetime
    tasks: list[ArrayTask] = []
    next_cursor: str | None = None


class GpuInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    index: int
    uuid: str | None = None
    name: str | None = None
    memory_total_mib: int | None = None
    memory_used_mib: int | None = None
    utilization_percent: int | None = None
    job_id: str | None = None


class NodeCapacity(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What a node offers: ``slots`` jobs at once, within these totals."""

    slots: int = 1
    cpus: float = 1.0
    memory: int | None = None
    gpus: int = 0
    #: the backend can hold and release a run it launched that does not run yet (batch systems)
    hold: bool = False
    #: a job of more than one slot (CPU) runs here only with this spec option set, the node having no
    #: default for it (``sge.parallel_environment`` on SGE without JOBWIRE_HPC_PARALLEL_ENVIRONMENT)
    single_slot_unless: str | None = None
    #: JSON Schema of the backend's ``backend_options`` (``contracts.v1.options``); None: it takes none
    options_schema: dict[str, Any] | None = None
    #: the address other ranks of a gang job reach this node's jobs at (its rank 0 is the master);
    #: None: the node name
    address: str | None = None
    #: the node runs an array's tasks dispatched together as one native array job (``RunArray``):
    #: the scheduler sends them in one message and leaves their parallelism to the batch system
    native_arrays: bool = False
    #: the node launches a gang's ranks itself inside one batch job (SLURM: ``--nodes N`` and one
    #: ``srun`` step): a job of ``"backend": "hpc"`` and ``resources.nodes`` > 1 runs here as one job
    gang_launch: bool = False
    #: the node runs the jobs of this owner only: its executor runs jobs as its own OS account
    #: (``JOBWIRE_EXECUTOR_RUN_AS=self`` with ``JOBWIRE_EXECUTOR_OWNER``), which one owner's files may
    #: share but two owners' may not; None: any owner's
    owner: str | None = None


class NodeView(msgspec.Struct, kw_only=True):
    name: str
    backend: str
    state: str
    capacity: NodeCapacity
    labels: dict[str, str] = {}
    pool: str | None = None
    running: int = 0
    queued: int = 0
    queued_seconds: float = 0.0
    last_heartbeat: datetime | None = None
    gpus: list[GpuInfo] = []
    version: str | None = None


def job_spec_of(job: Job) -> JobSpec:
    """The spec part of a job (drops everything the system added)."""
    fields = {f: getattr(job, f) for f in JobSpec.__struct_fields__}
    return JobSpec(**fields)
