"""What can go wrong talking to the gateway, as exceptions a caller (and the CLI) can tell apart."""

from __future__ import annotations

import contextlib
from http import HTTPStatus
from typing import Any

import httpx
import msgspec

from jobwire.contracts import v1


class JobwireError(Exception):
    """Base of every error this client raises."""


class ApiError(JobwireError):
    """The gateway answered with an error (RFC 9457 problem+json where it could)."""

    def __init__(self, status: int, title: str, detail: str = "", *, type: str | None = None) -> None:
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        """Read the problem document; a proxy's HTML error page still gives a clean message."""
        status = response.status_code
        phrase = _phrase(status)
        body: Any = None
        with contextlib.suppress(msgspec.DecodeError):
            body = msgspec.json.decode(response.content)
        if isinstance(body, dict):
            title = str(body.get("title") or phrase)
            detail = str(body.get("detail") or "")
            kind = body.get("type")
            return cls(status, title, detail, type=str(kind) if kind else None)
        text = response.text.strip().splitlines()
        return cls(status, phrase, text[0][:200] if text else "")


class ConnectionFailed(JobwireError):
    """The gateway could not be reached, or the connection broke and could not be resumed."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"could not reach {url}: {reason}")
        self.url = url
        self.reason = reason


class UnexpectedResponse(JobwireError):
    """The gateway answered something this client cannot read (a version mismatch, a wrong URL)."""


class WaitTimeout(JobwireError, TimeoutError):
    """``wait`` gave up before the job finished; ``job`` is how it was last seen."""

    def __init__(self, job: v1.Job, timeout: float) -> None:
        super().__init__(f"job {job.id} still {job.state.value} after {timeout:g}s")
        self.job = job


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def describe_transport_error(exc: httpx.TransportError) -> str:
    """A short human reason; httpx's own messages can be empty (e.g. some timeouts)."""
    if isinstance(exc, httpx.ConnectTimeout):
        return "timed out connecting"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out waiting for an answer"
    if isinstance(exc, httpx.ConnectError):
        return str(exc) or "connection failed"
    return str(exc) or type(exc).__name__
