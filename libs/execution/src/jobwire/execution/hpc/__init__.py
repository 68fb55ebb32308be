"""HPC batch schedulers behind one interface (``jobwire.hpc_schedulers`` entry points)."""

from __future__ import annotations

from .base import (
    HPC_SCHEDULERS_GROUP,
    Accounting,
    BatchRequest,
    BatchSystem,
    Directive,
    Phase,
    QueueEntry,
    SchedulerError,
    SchedulerUnavailable,
    load_scheduler,
    registered_schedulers,
)
from .values import check_token, parse_duration_hms, parse_size_units

__all__ = [
    "HPC_SCHEDULERS_GROUP",
    "Accounting",
    "BatchRequest",
    "BatchSystem",
    "Directive",
    "Phase",
    "QueueEntry",
    "SchedulerError",
    "SchedulerUnavailable",
    "check_token",
    "load_scheduler",
    "parse_duration_hms",
    "parse_size_units",
    "registered_schedulers",
]
