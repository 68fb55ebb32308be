"""A JSON body decoded as strictly as a JobSpec: unknown fields refused, and no coercion.

Litestar converts a ``data`` body in msgspec's lax mode, so ``{"admin": 0}`` became ``False`` and
``{"days": "5"}`` became ``5.0``: values the OpenAPI schema forbids were taken. Handlers that read their
body through :func:`json_body` answer 400 for malformed JSON, 415 for another media type and 422 with
the field's path for a value of the wrong type or out of its bounds.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar import Request

from jobwire.contracts import v1

from .problems import UnsupportedMediaType, invalid_body

T = TypeVar("T")


def check_json_media(content_type: str | None) -> None:
    media = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(f"send application/json, not {media!r}")


def _integral(value: Any) -> Any:
    """``6.0`` as ``6``: JSON Schema's integers include numbers with a zero fraction, msgspec's do not
    (and a float field takes an int as it is)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


async def json_body(request: Request[Any, Any, Any], tp: type[T]) -> T:
    check_json_media(request.headers.get("content-type"))
    try:
        raw = msgspec.json.decode(await request.body())
        return v1.convert_strict(_integral(raw), tp)
    except msgspec.MsgspecError as e:
        raise invalid_body(e) from None
