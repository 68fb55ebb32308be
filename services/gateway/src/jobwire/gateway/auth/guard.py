"""The one guard every route passes: authenticate, then check the scope the route declares.

A route names its scope in ``opt={"scope": ...}``; one that names none needs ``admin`` (deny by default).
``opt={"public": True}`` marks the probes; the OpenAPI pages are public too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from jobwire.store.tokens import ADMIN

from ..problems import Forbidden
from ..resources import STATE_KEY, Resources
from .credentials import authenticate
from .principal import set_principal

SCHEMA_PATH = "/schema"


def is_public(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> bool:
    path = connection.scope["path"]
    return bool(handler.opt.get("public")) or path == SCHEMA_PATH or path.startswith(SCHEMA_PATH + "/")


def _authorization(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The Authorization header, read from the ASGI scope's raw (lower-cased) headers: the guard runs on
    every request, and ``connection.headers`` builds a Headers object of all of them first."""
    for name, value in headers:
        if name == b"authorization":
            return value.decode("latin-1")
    return None


async def authorize(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    if is_public(connection, handler):
        return
    res: Resources = connection.app.state[STATE_KEY]
    principal = await authenticate(res, res.keys, _authorization(connection.scope["headers"]))
    set_principal(connection, principal)
    scope = str(handler.opt.get("scope", ADMIN))
    if not principal.allows(scope):
        raise Forbidden(
            f"this needs the `{scope}` scope; the token has: {', '.join(sorted(principal.scopes))}"
        )
