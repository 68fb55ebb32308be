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


class Job(JobSpec, kw_only=True, omit_defaults=False):
    """A submitted job: its spec plus what happened to it."""

    id: str
    owner: str = "anonymous"
    state: JobState = JobState.QUEUED
    reason: str | None = None
    attempt: int = 0
    queue_position: int | None = None
    exit_code: int | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    transitions: list[TransitionRecord] = []
    usage: Usage | None = None
    artifacts: list[Artifact] = []
    ports: dict[str, str] = {}
    details: dict[str, Any] = {}


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
