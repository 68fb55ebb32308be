"""The one guard every route passes: authenticate, then check the scope the route declares.

A route names its scope in ``opt={"scope": ...}``; one that names none needs ``admin`` (deny by default).
``opt={"public": True}`` marks the probes; the OpenAPI pages are public too.

It runs as the app's ``before_request`` hook, before any parameter or body is read: Litestar calls a
*guard* with a shallow copy of the route handler on every request (``copy.copy``, 10-20 us of the
gateway's ~450 us per submit). ``check_every_route`` makes sure no layer replaced the hook.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from litestar import Litestar, Request
from litestar.connection import ASGIConnection
from litestar.handlers import HTTPRouteHandler
from litestar.handlers.base import BaseRouteHandler
from litestar.routes import HTTPRoute

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


async def authorize_request(request: Request[Any, Any, Any]) -> None:
    """``authorize`` as a ``before_request`` hook (returns nothing, so the handler runs when it passes)."""
    await authorize(request, request.route_handler)


def check_every_route(app: Litestar) -> None:
    """Refuse to start when a route would skip ``authorize_request``: a handler that is not plain HTTP
    (no ``before_request``), or a controller or router that set a hook of its own in its place."""
    for route in app.routes:
        handlers = route.route_handlers if isinstance(route, HTTPRoute) else [None]
        for handler in handlers:
            hook = handler.resolve_before_request() if isinstance(handler, HTTPRouteHandler) else None
            if hook is not authorize_request:
                raise RuntimeError(f"route {route.path} would not authenticate its requests")
