"""Who is asking. There is no authentication yet: everyone is ``anonymous``.

The one place a later token check replaces, so controllers never look at credentials themselves.
"""

from __future__ import annotations

from typing import Any

from litestar import Request

ANONYMOUS = "anonymous"


def owner_of(request: Request[Any, Any, Any]) -> str:
    """The owner of what this request creates (and later, what it may see)."""
    return ANONYMOUS
