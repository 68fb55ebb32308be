"""Scheduler settings, from ``JOBWIRE_SCHEDULER_*`` (and ``JOBWIRE_DATABASE_URL``)."""

from __future__ import annotations

import dataclasses
import os

from jobwire.runtime.settings import from_env

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///.jobwire/jobwire.db"


@dataclasses.dataclass(kw_only=True)
class SchedulerSettings:
    database_url: str = dataclasses.field(
        default_factory=lambda: os.environ.get("JOBWIRE_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    #: most messages taken in one fetch and committed in one transaction
    batch_size: int = 256
    #: a node silent for this long is down: its queued jobs move, its running jobs are lost
    node_timeout: float = 10.0
    #: how often liveness, timeouts and heartbeat bookkeeping run
    tick: float = 0.5
    #: the executor enforces timeouts; past timeout + this grace the scheduler asks it to, then decides itself
    timeout_grace: float = 15.0
    #: placement guess for jobs that give neither expected_runtime nor walltime
    default_expected_runtime: float = 60.0
    placement: str = "least-queued-time"
    migrate: bool = True


def scheduler_settings(**overrides: object) -> SchedulerSettings:
    return from_env(SchedulerSettings, "JOBWIRE_SCHEDULER_", None, **overrides)
