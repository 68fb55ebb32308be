"""RFC 9457 problem details: every error the gateway answers is ``application/problem+json``.

Domain code raises :class:`Problem` subclasses; Litestar's own HTTP errors (unknown route, wrong method,
body too large, bad query parameter) and anything unexpected go through the same handlers here.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
import sqlalchemy.exc
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from jobwire.contracts import v1

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:jobwire:problem:"
_MSGSPEC_PATH = re.compile(r" - at `(\$[^`]*)`$")
#: seconds a client is asked to wait while NATS or the database is unreachable
UNAVAILABLE_RETRY_AFTER = 5
_FIELD_FIRST = re.compile(r"^([a-z_]+(?:\.[a-z_]+)*) ")
_SPEC_FIELDS = frozenset(v1.JobSpec.__struct_fields__)


class Problem(Exception):
    """An error the client can act on; ``slug`` names its ``type``, ``extra`` adds members."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}
        self.headers = headers or {}


class MalformedJson(Problem):
    slug, title = "malformed-json", "Malformed JSON"


class InvalidBody(Problem):
    status, slug, title = 422, "invalid-body", "Invalid request body"


class InvalidParameter(Problem):
    slug, title = "invalid-parameter", "Invalid parameter"


class UnsupportedMediaType(Problem):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class JobNotFound(NotFound):
    slug, title = "job-not-found", "Job not found"


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="jobwire"'})


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Forbidden"


class TooManyRequests(Problem):
    status, slug, title = 429, "quota-exceeded", "Quota exceeded"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class NotReady(Problem):
    status, slug, title = 503, "not-ready", "Not ready"

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail, extra=extra, headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)})


def invalid_body(error: msgspec.MsgspecError) -> Problem:
    """Malformed JSON → 400; valid JSON that is not a valid JobSpec → 422 with the field's JSON path."""
    message = str(error)
    if not isinstance(error, msgspec.ValidationError):
        return MalformedJson(f"the body is not valid JSON: {message}")
    match = _MSGSPEC_PATH.search(message)
    path = match.group(1) if match else _unknown_field_path(message)
    if path in (None, "$"):
        path = _named_field_path(message) or path
    return InvalidBody(message, extra={"path": path} if path else None)


def _named_field_path(message: str) -> str | None:
    # whole-spec rules (contracts' asks, workdir) start their message with the field they refuse
    m = _FIELD_FIRST.match(message)
    if m is None or m.group(1).split(".")[0] not in _SPEC_FIELDS:
        return None
    return f"$.{m.group(1)}"


def _unknown_field_path(message: str) -> str | None:
    # codec.UnknownField says "unknown field `key` at `$.path`"
    m = re.match(r"unknown field `([^`]*)` at `(\$[^`]*)`", message)
    return f"{m.group(2)}.{m.group(1)}" if m else None


def problem_response(
    request: Request[Any, Any, Any],
    *,
    status: int,
    slug: str,
    title: str,
    detail: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    body.update(extra or {})
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _on_problem(request: Request[Any, Any, Any], exc: Problem) -> Response[dict[str, Any]]:
    return problem_response(
        request,
        status=exc.status,
        slug=exc.slug,
        title=exc.title,
        detail=exc.detail,
        extra=exc.extra,
        headers=exc.headers,
    )


def _on_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    if isinstance(exc, ValidationException) and status == 400:
        errors = exc.extra if isinstance(exc.extra, list) else []
        detail = "; ".join(_describe(e) for e in errors) or str(exc.detail)
        return problem_response(
            request, status=400, slug=InvalidParameter.slug, title=InvalidParameter.title, detail=detail
        )
    try:
        known = HTTPStatus(status)
        phrase, slug = known.phrase, known.name.lower().replace("_", "-")
    except ValueError:
        phrase, slug = "Error", "http-error"
    detail = exc.detail if exc.detail and exc.detail != phrase else _default_detail(request, status, phrase)
    if status == 413:
        detail = f"the request body is larger than this server accepts ({_limit(request)})"
    return problem_response(
        request, status=status, slug=slug, title=phrase, detail=detail, headers=exc.headers
    )


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        request,
        status=500,
        slug="internal-error",
        title="Internal server error",
        detail="an unexpected error occurred; it was logged on the server",
    )


#: what an unreachable NATS or database raises (nats-py's errors, SQLAlchemy's connection errors,
#: the socket's own); a request that meets one is a 503, never a 500
UNAVAILABLE: tuple[type[Exception], ...] = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.NoServersError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    ConnectionError,
    TimeoutError,
)


#: what a database error says when the database cannot be reached (not a bug in a query)
_DB_DOWN = ("connect", "connection", "database is locked", "unable to open", "disk i/o", "shutting down")


def _database_down(exc: sqlalchemy.exc.SQLAlchemyError) -> bool:
    if isinstance(exc, sqlalchemy.exc.TimeoutError):
        return True  # no connection came free from the pool
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and (
        exc.connection_invalidated or isinstance(exc.orig, OSError)
    ):
        return True
    text = str(getattr(exc, "orig", None) or exc).lower()
    return any(word in text for word in _DB_DOWN)


def _on_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    if isinstance(exc, sqlalchemy.exc.SQLAlchemyError) and not _database_down(exc):
        return _on_unexpected(request, exc)  # a query the database refused: our bug, not an outage
    what = "the database" if isinstance(exc, sqlalchemy.exc.SQLAlchemyError) else "NATS"
    if isinstance(exc, ConnectionError | TimeoutError) and not isinstance(exc, nats.errors.Error):
        what = "the database or NATS"
    log.warning("%s %s: %s unavailable (%s)", request.method, request.url.path, what, type(exc).__name__)
    return problem_response(
        request,
        status=503,
        slug="unavailable",
        title="Service unavailable",
        detail=f"{what} cannot be reached right now; try again later",
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
    )


def _on_unreadable(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """A body nested too deeply for the parser (RecursionError) or not UTF-8 is the client's fault."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return _on_unexpected(request, exc)
    why = "nests too deeply" if isinstance(exc, RecursionError) else "is not valid UTF-8"
    return problem_response(
        request,
        status=400,
        slug=MalformedJson.slug,
        title=MalformedJson.title,
        detail=f"the request body {why}",
    )


def _describe(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    key, source, message = error.get("key"), error.get("source"), error.get("message", "invalid")
    source = getattr(source, "value", source)  # Litestar gives a ParamType enum
    return f"{source} parameter `{key}`: {message}" if key else str(message)


def _default_detail(request: Request[Any, Any, Any], status: int, phrase: str) -> str:
    if status == 404:
        return f"no route matches {request.url.path}"
    if status == 405:
        return f"{request.method} is not allowed on {request.url.path}"
    return phrase


def _limit(request: Request[Any, Any, Any]) -> str:
    limit = getattr(request.app, "request_max_body_size", None)
    return f"{limit} bytes" if limit else "its limit"


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    Problem: _on_problem,
    HTTPException: _on_http,
    RecursionError: _on_unreadable,
    UnicodeDecodeError: _on_unreadable,
    **dict.fromkeys(UNAVAILABLE, _on_unavailable),
    Exception: _on_unexpected,
}


class ProblemDetails(msgspec.Struct, kw_only=True):
    """RFC 9457 body of every error (documents the shape in the OpenAPI schema)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    path: str | None = None
