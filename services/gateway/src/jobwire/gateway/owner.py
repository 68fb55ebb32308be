"""Who is asking: the owner the guard authenticated, so controllers never look at credentials themselves."""

from __future__ import annotations

from typing import Any

from litestar import Request

from .auth.principal import ANONYMOUS as _ANONYMOUS
from .auth.principal import principal_of

ANONYMOUS = _ANONYMOUS.owner


def owner_of(request: Request[Any, Any, Any]) -> str:
    """The owner of what this request creates."""
    return principal_of(request).owner
