"""The API docs at ``/schema`` (Swagger UI) and ``/schema/redoc``, rendered with no Internet access.

Litestar's render plugins load their JS/CSS from CDNs by default, so the docs were blank on an offline
machine or behind a proxy. The assets are vendored under ``assets/`` (see ``assets/README.md`` for their
versions, source and licences) and served by the gateway itself under ``/schema/assets``, a public path
like the rest of ``/schema``.
"""

from __future__ import annotations

from pathlib import Path

from litestar.datastructures import CacheControlHeader
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router

SCHEMA_PATH = "/schema"
ASSETS_PATH = f"{SCHEMA_PATH}/assets"
ASSETS_DIR = Path(__file__).parent / "assets"
FAVICON = f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/swagger-ui/favicon-32x32.png'>"


def openapi_config(version: str) -> OpenAPIConfig:
    """Swagger UI first (it answers ``/schema``), then Redoc; every URL they load is the gateway's."""
    swagger = SwaggerRenderPlugin(
        js_url=f"{ASSETS_PATH}/swagger-ui/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui/swagger-ui-standalone-preset.js",
        path=["/", "/swagger"],
        favicon=FAVICON,
    )
    redoc = RedocRenderPlugin(
        js_url=f"{ASSETS_PATH}/redoc/redoc.standalone.js", google_fonts=False, favicon=FAVICON
    )
    return OpenAPIConfig(
        title="jobwire",
        version=version,
        description="One REST API for jobs on Docker hosts, HPC batch schedulers and SSH GPU nodes.",
        path=SCHEMA_PATH,
        render_plugins=[swagger, redoc],
    )


def assets_router() -> Router:
    """The vendored files; cached a day by browsers (they change only with the gateway's version)."""
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[ASSETS_DIR],
        name="apidocs-assets",
        opt={"public": True},
        include_in_schema=False,
        cache_control=CacheControlHeader(max_age=86400, public=True),
    )
