"""Probes, the OpenAPI schema and its UI, and the 500 problem for unexpected errors."""

from __future__ import annotations

from html.parser import HTMLParser

import httpx
import pytest

from jobwire.gateway import GatewaySettings, serve
from jobwire.runtime.settings import BusSettings

pytestmark = pytest.mark.integration


async def test_health_and_ready(gateway):
    assert (await gateway.get("/health")).json() == {"status": "ok"}
    r = await gateway.get("/ready")
    assert r.status_code == 200
    assert r.json() == {"status": "ready"}


async def test_schema_and_its_ui(gateway):
    ui = await gateway.get("/schema")
    assert ui.status_code == 200
    assert ui.headers["content-type"].startswith("text/html")
    for page in ("/schema/swagger", "/schema/redoc"):
        assert (await gateway.get(page)).status_code == 200, page
    schema = (await gateway.get("/schema/openapi.json")).json()
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/logs", "/ready"} <= set(schema["paths"])
    body = schema["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    # a job spec, or a template's name with overrides: the spec alternative documents its fields
    alternatives = body.get("anyOf", [body])
    assert any("resources" in alt.get("properties", {}) for alt in alternatives), body


class _Links(HTMLParser):
    """Every URL a page makes the browser load: script src, link href, img src."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)


ASSET_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


@pytest.mark.parametrize("page", ["/schema", "/schema/swagger", "/schema/redoc"])
async def test_the_api_docs_load_nothing_from_outside_the_gateway(gateway, page):
    """Offline, or behind a proxy, a CDN URL leaves the page blank: every asset is the gateway's own."""
    html = await gateway.get(page)
    assert html.status_code == 200
    links = _Links()
    links.feed(html.text)
    scripts = [u for u in links.urls if u.endswith(".js")]
    assert scripts, links.urls  # the UI itself, not an empty page
    for url in links.urls:
        assert url.startswith("/") and not url.startswith("//"), f"{page} loads {url} from elsewhere"
        asset = await gateway.get(url, headers={"Authorization": ""})  # public, like the page
        assert asset.status_code == 200, url
        assert ASSET_TYPES[url[url.rindex(".") :]] in asset.headers["content-type"], url
        assert len(asset.content) > 500, url
    assert "googleapis" not in html.text and "cdn." not in html.text


async def test_unexpected_errors_are_500_without_internals(nats_url, sqlite_url, clean_bus):
    # A database without the schema: every job query fails inside SQLAlchemy.
    settings = GatewaySettings(database_url=sqlite_url, bus=BusSettings(nats_url=nats_url), auth="off")
    async with serve(settings, port=0) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/ready")).status_code == 200  # SELECT 1 still answers
        r = await client.get("/v1/jobs")
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"] == "urn:jobwire:problem:internal-error"
    assert "jobs" not in body["detail"]
    assert "sqlite" not in r.text.lower()


async def test_not_ready_when_the_database_does_not_answer(nats_url, tmp_path, clean_bus):
    broken = f"sqlite+aiosqlite:///{tmp_path}"  # a directory, not a database file
    settings = GatewaySettings(database_url=broken, bus=BusSettings(nats_url=nats_url), auth="off")
    async with serve(settings, port=0) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.get("/ready")
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "database" in r.json()["detail"]
