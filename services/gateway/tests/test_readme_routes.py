"""The README's route table lists every route the gateway serves, read from the app's own OpenAPI document.

A route added without a line in the table fails here, so the table a new user reads stays complete.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jobwire.gateway import GatewaySettings
from jobwire.gateway.app import create_app
from jobwire.runtime.settings import BusSettings

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[3] / "README.md"
METHODS = {"get", "post", "put", "delete", "patch"}
#: `GET /v1/x`, `PUT/GET/DELETE /v1/x/{name}` in backticks; a query string is ignored
ROUTE = re.compile(r"`((?:GET|POST|PUT|DELETE|PATCH)(?:/(?:GET|POST|PUT|DELETE|PATCH))*) (/[^`?\s]*)[^`]*`")


def normal(path: str) -> str:
    """``/v1/jobs/{job_id}/files/{path}`` and ``/v1/jobs/{id}/files/{path}`` are the same route."""
    return re.sub(r"\{[^}]*\}", "{}", path.rstrip("/") or "/")


def documented() -> set[tuple[str, str]]:
    text = README.read_text()
    table = text[text.index("## The API") :]
    table = table[: table.index("\n## ", 1)]
    found = set()
    for methods, path in ROUTE.findall(table):
        for method in methods.split("/"):
            found.add((method, normal(path)))
    return found


def served() -> set[tuple[str, str]]:
    settings = GatewaySettings(
        database_url="sqlite+aiosqlite:///unused.db",
        bus=BusSettings(nats_url="nats://127.0.0.1:1"),
        auth="off",
    )
    doc = create_app(settings).openapi_schema.to_schema()
    return {(m.upper(), normal(p)) for p, ops in doc["paths"].items() for m in ops if m in METHODS}


def test_every_route_of_the_app_is_in_the_readme_table() -> None:
    routes = served()
    assert ("GET", "/v1/jobs/{}") in routes and len(routes) > 20  # the document was really read

    missing = sorted(routes - documented())

    assert not missing, f"README.md's route table lacks: {', '.join(f'{m} {p}' for m, p in missing)}"


def test_the_table_is_read_as_routes() -> None:
    """The parser sees the table's shorthands (several methods, several routes in a row)."""
    table = documented()
    assert {("PUT", "/v1/inputs/{}"), ("DELETE", "/v1/inputs/{}"), ("POST", "/v1/jobs/{}/release")} <= table
