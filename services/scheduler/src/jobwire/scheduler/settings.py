"""Scheduler settings, from ``JOBWIRE_SCHEDULER_*`` (and ``JOBWIRE_DATABASE_URL``)."""

from __future__ import annotations

import dataclasses
import os
import socket

from jobwire.runtime.settings import from_env

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///.jobwire/jobwire.db"


@dataclasses.dataclass(kw_only=True)
class SchedulerSettings:
    database_url: str = dataclasses.field(
        default_factory=lambda: os.environ.get("JOBWIRE_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    #: most messages taken in one fetch and committed in one transaction
    batch_size: int = 256
    #: how long a batch waits, once its first message is in, for more to join it (seconds) ...
    linger: float = 0.002
    #: ... when the batch before it carried at least this many messages (clients are sending at once);
    #: at one client's pace a batch goes at once (the linger was the largest part of its latency)
    linger_after: int = 4
    #: a node silent for this long is down: its queued jobs move, its running jobs are lost
    node_timeout: float = 10.0
    #: how often liveness, timeouts and heartbeat bookkeeping run
    tick: float = 0.5
    #: the executor enforces timeouts; past timeout + this grace the scheduler asks it to, then decides itself
    timeout_grace: float = 15.0
    #: placement guess for jobs that give neither expected_runtime nor walltime
    default_expected_runtime: float = 60.0
    placement: str = "least-queued-time"
    #: fair share between owners: recent usage (resource-seconds) halves over this many seconds.
    #: ``JOBWIRE_FAIRSHARE_HALF_LIFE`` (or ``JOBWIRE_SCHEDULER_FAIRSHARE_HALF_LIFE``); default one hour
    fairshare_half_life: float = dataclasses.field(
        default_factory=lambda: float(os.environ.get("JOBWIRE_FAIRSHARE_HALF_LIFE", "3600"))
    )
    migrate: bool = True
    #: trace each command's handling (spans continue the trace its headers carry). Unset: when
    #: ``OTEL_TRACES_EXPORTER`` names an exporter (unset: ``otlp`` when an
    #: ``OTEL_EXPORTER_OTLP_*ENDPOINT`` is given) or this process set tracing up already
    tracing: bool | None = None
    #: who this replica is in the leader lease; a restart under the same id takes its lease back at
    #: once, so replicas on one host need distinct ids (default: the host name)
    instance: str = dataclasses.field(default_factory=socket.gethostname)
    #: lease period: a standby takes over this long after the active replica stopped refreshing.
    #: Must be the TTL of ``lease_bucket`` (jobwire_leader is declared with 15 s)
    lease_ttl: float = 15.0
    lease_bucket: str = "jobwire_leader"


def scheduler_settings(**overrides: object) -> SchedulerSettings:
    return from_env(SchedulerSettings, "JOBWIRE_SCHEDULER_", None, **overrides)
