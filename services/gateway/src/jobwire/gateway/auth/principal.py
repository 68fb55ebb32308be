"""The authenticated caller of one request, kept in the ASGI scope by the guard."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency

from jobwire.store.tokens import ADMIN, SCOPES

from ..resources import Resources

SCOPE_KEY = "jobwire.principal"


@dataclass(frozen=True)
class Principal:
    owner: str
    scopes: frozenset[str]
    #: the database token used, None for a shared key or with auth off
    token_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.scopes

    def allows(self, scope: str) -> bool:
        return self.is_admin or scope in self.scopes

    @property
    def visible_owner(self) -> str | None:
        """The owner filter for reads: None (everyone) for admins, else only their own."""
        return None if self.is_admin else self.owner


EVERYTHING = frozenset(SCOPES)
ANONYMOUS = Principal(owner="anonymous", scopes=EVERYTHING)


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The caller the guard authenticated (routes without a guard never ask)."""
    return cast(Principal, cast(dict[str, Any], connection.scope)[SCOPE_KEY])


def set_principal(connection: ASGIConnection[Any, Any, Any, Any], principal: Principal) -> None:
    cast(dict[str, Any], connection.scope)[SCOPE_KEY] = principal


def maybe_principal(scope: Any) -> Principal | None:
    return cast(Principal | None, scope.get(SCOPE_KEY))


def provide_caller(request: Request[Any, Any, Any], res: NamedDependency[Resources]) -> Principal:
    """The caller, for a handler's ``caller`` parameter.

    ``res`` is taken only to order the two app-wide dependencies: Litestar resolves dependencies that
    depend on nothing in one batch, and a batch of two runs in an anyio task group (two tasks, a cancel
    scope and an event per request: about a tenth of ``/v1/jobs/counts``'s gateway CPU under py-spy).
    Depending on ``res`` puts ``caller`` in a batch of its own after it, and each is called inline.
    """
    del res
    return principal_of(request)
