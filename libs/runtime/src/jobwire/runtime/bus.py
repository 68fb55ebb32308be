"""NATS and JetStream: connect, declare the streams and buckets, publish typed messages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, BadRequestError, NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from jobwire.contracts.v1 import codec
from jobwire.contracts.v1 import subjects as sj

from . import natsauth, telemetry
from .metrics import NATS_RECONNECTS
from .settings import BusSettings

log = logging.getLogger(__name__)
DAY = 86400.0
#: JetStream API errors of a cluster still forming: 10008 "JetStream system temporarily unavailable"
_NOT_READY_CODES = frozenset({10008})
#: a program catalog no node has published again for this long is dropped (executors re-put it)
PROGRAM_TTL = 3600.0


@dataclass
class Bus:
    """One connection plus its JetStream context; what every service passes around."""

    nc: Client
    js: JetStreamContext
    settings: BusSettings

    async def publish(
        self,
        subject: str,
        message: Any,
        *,
        msg_id: str | None = None,
        headers: dict[str, str] | None = None,
        stream: str | None = None,
    ) -> Any:
        """Publish to JetStream and wait for the stream's ack (the message is stored when this returns)."""
        hdrs = telemetry.inject(headers)
        if msg_id:
            hdrs[sj.MSG_ID_HEADER] = msg_id
        payload = message if isinstance(message, bytes) else codec.encode(message)
        return await self.js.publish(subject, payload, headers=hdrs, stream=stream)

    async def publish_core(self, subject: str, message: Any, headers: dict[str, str] | None = None) -> None:
        """Fire-and-forget core NATS publish (heartbeats)."""
        payload = message if isinstance(message, bytes) else codec.encode(message)
        await self.nc.publish(subject, payload, headers=telemetry.inject(headers))

    async def artifacts(self) -> ObjectStore:
        return await self.js.object_store(sj.ARTIFACT_BUCKET)

    async def inputs(self) -> ObjectStore:
        """Named inputs (``PUT /v1/inputs/{name}``), objects ``<owner>/<name>``."""
        return await self.js.object_store(sj.INPUT_BUCKET)

    async def idempotency(self) -> KeyValue:
        return await self.js.key_value(sj.IDEMPOTENCY_BUCKET)

    async def close(self, *, drain: bool = False) -> None:
        """Close the connection; ``drain`` first lets in-flight callbacks finish (slower)."""
        if self.nc.is_closed:
            return
        if drain:
            try:
                await asyncio.wait_for(self.nc.drain(), 5)
                return
            except Exception as e:
                log.debug("drain failed (%s); closing", e)
        await self.nc.close()


class TlsRefused(ConnectionError):
    """NATS and this service do not accept each other's certificates; retrying will not help."""


def _tls_refused(e: Exception) -> bool:
    transient = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError, ssl.SSLWantReadError)
    return isinstance(e, ssl.SSLError) and not isinstance(e, transient)


def _tls(settings: BusSettings) -> ssl.SSLContext | None:
    if not (settings.nats_tls_ca or settings.nats_tls_cert):
        return None
    ctx = ssl.create_default_context(cafile=settings.nats_tls_ca)
    if settings.nats_tls_cert:
        ctx.load_cert_chain(settings.nats_tls_cert, settings.nats_tls_key)
    return ctx


async def connect(settings: BusSettings, *, name: str, declare: bool = False) -> Bus:
    """Connect with the configured credentials; ``declare`` also creates or updates streams and buckets."""
    kwargs: dict[str, Any] = {
        "servers": settings.nats_url.split(","),
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 1,
        "connect_timeout": 5,
    }
    if settings.nats_user:
        kwargs["user"] = settings.nats_user
        kwargs["password"] = settings.nats_password
        # Replies on a per-user prefix, which a locked-down bus lets only this user read (natsauth).
        with contextlib.suppress(ValueError):
            kwargs["inbox_prefix"] = natsauth.inbox_prefix(settings.nats_user)
    if settings.nats_token:
        kwargs["token"] = settings.nats_token
    if settings.nats_creds_file:
        kwargs["user_credentials"] = settings.nats_creds_file
    tls = _tls(settings)
    if tls is not None:
        kwargs["tls"] = tls

    starting = [True]

    async def _error(e: Exception) -> None:
        log.warning("nats: %s", e)
        if starting[0] and _tls_refused(e):
            # nats-py retries a first connect forever (max_reconnect_attempts=-1), but a certificate
            # the other side rejects is configuration: stop with a message that says which.
            raise TlsRefused(
                f"the TLS handshake with NATS failed ({e}): check JOBWIRE_NATS_TLS_CA "
                "(the CA that signed the server's certificate) and JOBWIRE_NATS_TLS_CERT/_KEY"
            ) from e

    async def _reconnected() -> None:
        NATS_RECONNECTS.labels(client=name).inc()
        log.info("nats: reconnected to %s", nc.connected_url.netloc if nc.connected_url else "?")

    kwargs["error_cb"] = _error
    kwargs["reconnected_cb"] = _reconnected
    nc = Client()
    try:
        await nc.connect(**kwargs)
    except TlsRefused:
        # the failed handshake's transport never reports closed; do not wait for it
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.close(), 1)
        raise
    starting[0] = False
    bus = Bus(nc=nc, js=nc.jetstream(), settings=settings)
    if declare and settings.declare_streams:
        await declare_streams(bus)
    return bus


def stream_configs(settings: BusSettings) -> list[StreamConfig]:
    r = settings.stream_replicas
    return [
        StreamConfig(
            name=sj.CMD_STREAM,
            subjects=[sj.CMD_SUBJECTS],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            num_replicas=r,
            duplicate_window=300,
            description="commands for the scheduler",
        ),
        StreamConfig(
            name=sj.EXEC_STREAM,
            subjects=[sj.EXEC_SUBJECTS],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            num_replicas=r,
            duplicate_window=300,
            description="work for one node: run and cancel",
        ),
        StreamConfig(
            name=sj.REPORT_STREAM,
            subjects=[sj.REPORT_SUBJECTS],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            num_replicas=r,
            duplicate_window=300,
            description="executor reports for the scheduler",
        ),
        StreamConfig(
            name=sj.EVT_STREAM,
            subjects=[sj.EVT_SUBJECTS],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=r,
            max_age=settings.event_retention_days * DAY,
            duplicate_window=300,
            allow_direct=True,
            description="job state changes and progress",
        ),
        StreamConfig(
            name=sj.LOG_STREAM,
            subjects=[sj.LOG_SUBJECTS],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=r,
            max_age=settings.log_retention_days * DAY,
            max_msgs_per_subject=max(1, settings.log_max_bytes_per_job // 65536),
            discard=DiscardPolicy.OLD,
            duplicate_window=120,
            allow_direct=True,
            description="job stdout and stderr chunks",
        ),
    ]


def _not_ready(e: BaseException) -> bool:
    """JetStream cannot answer yet (a cluster electing its meta leader, peers still joining)."""
    if isinstance(e, nats.errors.NoRespondersError | asyncio.TimeoutError):
        return True  # nats-py's TimeoutError is an asyncio.TimeoutError too
    return isinstance(e, APIError) and (e.code == 503 or e.err_code in _NOT_READY_CODES)


async def declare_streams(bus: Bus) -> None:
    """Create the streams and buckets, or bring their settings up to date.

    A 3-node cluster that has just started answers "no responders" or 503 until it has elected a
    meta leader and its peers have joined; this waits that out (up to ``declare_wait`` seconds,
    each retry logged) instead of failing the service's start.
    """
    deadline = time.monotonic() + bus.settings.declare_wait
    delay = 0.25
    while True:
        try:
            await _declare(bus)
            return
        except Exception as e:
            if not _not_ready(e) or time.monotonic() + delay > deadline:
                raise
            log.warning(
                "JetStream is not ready to declare the streams (%s: %s); again in %.1fs",
                type(e).__name__,
                e,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 4.0)


async def _declare(bus: Bus) -> None:
    for cfg in stream_configs(bus.settings):
        try:
            await bus.js.add_stream(cfg)
        except BadRequestError:
            await bus.js.update_stream(cfg)
    r = bus.settings.stream_replicas
    try:
        await bus.js.key_value(sj.IDEMPOTENCY_BUCKET)
    except (NotFoundError, Exception):
        await bus.js.create_key_value(KeyValueConfig(bucket=sj.IDEMPOTENCY_BUCKET, ttl=DAY, replicas=r))
    try:
        await bus.js.object_store(sj.ARTIFACT_BUCKET)
    except (NotFoundError, Exception):
        await bus.js.create_object_store(
            sj.ARTIFACT_BUCKET, ObjectStoreConfig(description="job artifacts", replicas=r)
        )
    try:
        await bus.js.object_store(sj.INPUT_BUCKET)
    except (NotFoundError, Exception):
        await bus.js.create_object_store(
            sj.INPUT_BUCKET, ObjectStoreConfig(description="named job inputs", replicas=r)
        )
    try:
        await bus.js.key_value(sj.LEADER_BUCKET)
    except (NotFoundError, Exception):
        await bus.js.create_key_value(KeyValueConfig(bucket=sj.LEADER_BUCKET, ttl=15, replicas=r))
    try:
        await bus.js.key_value(sj.TOKEN_BUCKET)
    except (NotFoundError, Exception):
        await bus.js.create_key_value(
            KeyValueConfig(bucket=sj.TOKEN_BUCKET, replicas=r, description="token records (hashes only)")
        )
    try:
        await bus.js.key_value(sj.PROGRAM_BUCKET)
    except (NotFoundError, Exception):
        await bus.js.create_key_value(
            KeyValueConfig(
                bucket=sj.PROGRAM_BUCKET,
                ttl=PROGRAM_TTL,
                replicas=r,
                description="program catalog of each executor node",
            )
        )
