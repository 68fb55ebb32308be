"""Parameter types shared by the controllers (Litestar's explicit, non-deprecated style)."""

from __future__ import annotations

from typing import Annotated

from litestar.di import NamedDependency
from litestar.params import HeaderParameter, PathParameter, QueryParameter

from .auth.principal import Principal
from .resources import Resources

Res = NamedDependency[Resources]
#: the authenticated caller (its ``visible_owner`` filters what it may read)
Caller = NamedDependency[Principal]
JobId = Annotated[str, PathParameter(description="The job's id (a UUIDv7)")]
#: the largest stream sequence or byte offset taken: NATS reads sequences as uint64, and JSON (the
#: OpenAPI schema's bounds among it) carries integers exactly up to 2**53
MAX_SEQUENCE = 2**53 - 1
#: the largest value an ``Integer`` column holds on every database (PostgreSQL's int4)
MAX_INT32 = 2**31 - 1
Offset = Annotated[int, QueryParameter(ge=0, le=MAX_SEQUENCE, description="Stream sequence to resume after")]
LastEventId = Annotated[
    str | None,
    HeaderParameter(name="Last-Event-ID", description="Sent by SSE clients on reconnect: resume after it"),
]
