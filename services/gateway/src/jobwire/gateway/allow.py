"""The ``Allow`` header of an ``OPTIONS`` answer lists every method of its path.

Litestar 2 builds a path's OPTIONS handler when the path's first handler is registered and keeps it
when the others join, so ``OPTIONS /v1/jobs`` answered ``Allow: GET, OPTIONS`` although ``POST`` is
served there (litestar issue 4169, fixed only in Litestar 3). This hook rewrites the header from the
final routes, before the answer leaves.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.datastructures import MutableScopeHeaders
from litestar.routes import HTTPRoute
from litestar.types import Message, Scope


class AllowHeaders:
    """A ``before_send`` hook: on an OPTIONS answer, ``Allow`` = every method of the matched path.

    Given to ``Litestar(before_send=...)``, then told the app's final routes by :meth:`learn`.
    """

    def __init__(self) -> None:
        self.allowed: dict[str, str] = {}

    def learn(self, app: Litestar) -> None:
        self.allowed = {
            route.path_format: ", ".join(sorted(route.methods))
            for route in app.routes
            if isinstance(route, HTTPRoute)
        }

    async def __call__(self, message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
            return
        allow = self.allowed.get(str(scope.get("path_template", "")))
        if allow is not None:
            MutableScopeHeaders.from_message(message)["allow"] = allow
