"""Every problem+json answer a route can give, documented in the OpenAPI schema.

Handlers raise :class:`~.problems.Problem`s and the exception handlers answer for what Litestar, the
body reader and outages raise, so no handler declares them; this adds them to every operation from the
route's shape: authenticated (401, 403), a path parameter (404), a body (408, 413, 415, 422), a job state
change (409), a quota or stream limit (429), and NATS or the database out of reach (503).
"""

from __future__ import annotations

from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.routes import HTTPRoute

from .problems import PROBLEM_JSON, ProblemDetails

DESCRIPTIONS = {
    400: "Malformed body or query parameter",
    401: "No valid credential",
    403: "The credential lacks the route's scope",
    404: "No such resource visible to the caller",
    408: "The request body stopped arriving",
    409: "Not allowed in the resource's current state",
    413: "The request body is larger than accepted",
    415: "The body is not of a supported media type",
    422: "The body is well-formed but not valid (the problem's `path` names the field)",
    429: "A quota or the open-stream limit is reached (see Retry-After)",
    503: "NATS or the database cannot be reached (see Retry-After)",
}
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: routes that admit work against a quota, or hold a stream open against the per-owner limit
LIMITED = (
    "/v1/jobs",
    "/v1/jobs:batch",
    "/v1/jobs/{job_id:str}/logs",
    "/v1/jobs/{job_id:str}/events",
    "/v1/events",
)
STATE_CHANGES = ("/cancel", "/hold", "/release")


def problem_statuses(path: str, method: str, handler: HTTPRouteHandler) -> set[int]:
    statuses = {400, 503}
    if not handler.opt.get("public"):
        statuses |= {401, 403}
    if "{" in path or (path.rstrip("/") == "/v1/jobs" and method == "POST"):  # or a submit's template
        statuses.add(404)
    if method in BODY_METHODS:
        statuses |= {408, 413, 415, 422}
    if path.rstrip("/") in LIMITED:
        statuses.add(429)
    if path.endswith(STATE_CHANGES) or (method == "DELETE" and path.startswith("/v1/jobs/")):
        statuses.add(409)
    return statuses


def document_problems(app: Litestar) -> None:
    """Add the problem responses to every documented operation (before the schema is first built)."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods:
                if method in ("HEAD", "OPTIONS"):
                    continue
                extra = {
                    status: ResponseSpec(
                        data_container=ProblemDetails,
                        media_type=PROBLEM_JSON,
                        description=DESCRIPTIONS[status],
                        generate_examples=False,
                    )
                    for status in sorted(problem_statuses(route.path, method, handler))
                    if status != handler.status_code
                }
                handler.responses = {**extra, **(handler.responses or {})}
