"""Gateway settings: ``JOBWIRE_GATEWAY_*``, plus ``JOBWIRE_DATABASE_URL`` and the bus's ``JOBWIRE_NATS_*``."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from jobwire.runtime.settings import BusSettings, bus_settings, from_env

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///.jobwire/jobwire.db"
PREFIX = "JOBWIRE_GATEWAY_"


@dataclasses.dataclass(kw_only=True)
class GatewaySettings:
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = DEFAULT_DATABASE_URL
    #: how long POST /v1/jobs waits for the scheduler's acceptance before answering 202
    accept_timeout: float = 3.0
    #: how often the registered nodes are re-read from the database (heartbeats update them between)
    nodes_refresh: float = 5.0
    #: how long cancel and delete wait for their outcome before answering 202
    wait_timeout: float = 3.0
    #: largest request body accepted (413 beyond it)
    max_body_size: int = 1024 * 1024
    #: a request body that sends nothing for this long is dropped with a 408 (seconds between reads)
    body_read_timeout: float = 30.0
    #: largest named input (``PUT /v1/inputs/{name}``, streamed into the object store; 413 beyond it)
    max_input_size: int = 256 * 1024 * 1024
    #: most bytes one GET /v1/jobs/{id}/files/{path} sends (413 beyond it: ask for a part)
    file_max_bytes: int = 1024 * 1024 * 1024
    #: a finished job's log follow ends after this long without the missing eof chunks (executor gone)
    log_eof_grace: float = 10.0
    #: SSE comment sent after this long without data, so proxies keep the connection
    sse_keepalive: float = 15.0
    #: log and event streams one owner may hold open on this process (429 with Retry-After beyond)
    streams_per_owner: int = 20
    #: on shutdown, open streams (log follows, event SSE) get this long before they are cut
    shutdown_timeout: float = 5.0
    #: processes serving the API (``jobwire-gateway``): 1, or 0 for one per core; more help only where
    #: the gateway has cores of its own (next to the scheduler and executors on 2 cores, keep 1)
    workers: int = 1
    #: install the OpenTelemetry tracer provider and the Litestar tracing middleware. Unset: on when
    #: ``OTEL_TRACES_EXPORTER`` names an exporter (unset: ``otlp`` when an ``OTEL_EXPORTER_OTLP_*ENDPOINT``
    #: is given) or this process set tracing up already (as tests do), off otherwise: spans that go
    #: nowhere cost about a third of a submit's gateway CPU
    tracing: bool | None = None
    #: "tokens": bearer tokens from the database and the shared keys below; "off": everyone is an
    #: anonymous admin, refused unless ``host`` is a loopback address
    auth: str = "tokens"
    #: one shared key for a one-team deployment (owner ``team``, every scope)
    api_key: str | None = dataclasses.field(default=None, repr=False)
    #: a secrets file of shared keys, one a line: ``KEY`` (owner ``team``) or ``OWNER KEY``
    api_keys_file: str | None = None
    #: a token's last use is written at most this often (seconds)
    token_touch_interval: float = 60.0
    #: tokens are read again from the database this often (seconds), for changes made there directly
    #: (``python -m jobwire.store token ...``); the API's changes arrive over NATS within a second
    token_reload_interval: float = 5.0
    #: the quotas table is read whole this often (seconds): a quota set through another replica (or
    #: directly in the database) applies here within that long; this replica's own changes at once
    quota_refresh: float = 1.0
    bus: BusSettings = dataclasses.field(default_factory=BusSettings)


def gateway_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> GatewaySettings:
    """Settings from the environment (the real environment, or ``environ`` in tests), then ``overrides``."""
    env = os.environ if environ is None else environ
    overrides.setdefault("database_url", env.get("JOBWIRE_DATABASE_URL"))
    overrides.setdefault("bus", bus_settings(env))
    return from_env(GatewaySettings, PREFIX, env, **overrides)
