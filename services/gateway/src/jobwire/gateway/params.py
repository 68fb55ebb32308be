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
Offset = Annotated[int, QueryParameter(ge=0, description="Stream sequence to resume after")]
LastEventId = Annotated[
    str | None,
    HeaderParameter(name="Last-Event-ID", description="Sent by SSE clients on reconnect: resume after it"),
]
