"""Settings as dataclasses read from the environment with a per-service prefix.

The real environment always wins; nothing secret has a default.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")

#: bytes of one job's stream kept: JetStream's per-subject limit and the executor's log file cap
LOG_MAX_BYTES_PER_JOB = 256 * 1024 * 1024

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _coerce(raw: str, tp: Any, name: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if raw == "" and len(args) < len(typing.get_args(tp)):
            return None
        return _coerce(raw, args[0], name)
    if tp is bool:
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"{name}={raw!r} is not a boolean (use true/false)")
    if tp in (int, float):
        try:
            return tp(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r} is not a {tp.__name__}") from None
    if origin in (list, tuple) or tp in (list, tuple):
        return [p.strip() for p in raw.split(",") if p.strip()]
    if origin is dict:
        out = {}
        for part in raw.split(","):
            if part.strip():
                k, _, v = part.partition("=")
                out[k.strip()] = v.strip()
        return out
    return raw


def from_env(
    cls: type[T], prefix: str, environ: typing.Mapping[str, str] | None = None, **overrides: Any
) -> T:
    """Build dataclass ``cls`` from ``PREFIX_FIELD`` variables (upper case), then ``overrides``."""
    env = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = f"{prefix}{f.name}".upper()
        if key in env:
            values[f.name] = _coerce(env[key], hints[f.name], key)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**values)


@dataclasses.dataclass(kw_only=True)
class BusSettings:
    """How to reach NATS. Credentials come from the environment or files, never from defaults."""

    nats_url: str = "nats://127.0.0.1:4222"
    nats_user: str | None = None
    nats_password: str | None = dataclasses.field(default=None, repr=False)
    nats_token: str | None = dataclasses.field(default=None, repr=False)
    nats_creds_file: str | None = None
    nats_tls_ca: str | None = None
    nats_tls_cert: str | None = None
    nats_tls_key: str | None = None
    stream_replicas: int = 1
    #: off for users without stream-admin rights (a locked-down bus: only the scheduler declares)
    declare_streams: bool = True
    #: seconds to keep retrying the declaration while a JetStream cluster is still forming
    declare_wait: float = 60.0
    event_retention_days: float = 7.0
    log_retention_days: float = 7.0
    log_max_bytes_per_job: int = LOG_MAX_BYTES_PER_JOB


def bus_settings(environ: typing.Mapping[str, str] | None = None) -> BusSettings:
    return from_env(BusSettings, "JOBWIRE_", environ)
