"""The web dashboard at ``/ui``: static HTML, CSS and plain JS modules served by the gateway itself.

The dashboard is a client of the REST API and nothing more: its files hold no data and no secret, so they
are public like ``/schema``; every job, node and log it shows comes from ``/v1`` with the token the user
typed, kept in ``sessionStorage`` and sent as an ``Authorization`` header (never a cookie, so another site
cannot make the browser act for the user). No CDN, font or script from elsewhere: it works air-gapped.
The Content-Security-Policy says so to the browser, too.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Response
from litestar.datastructures import CacheControlHeader
from litestar.router import Router
from litestar.static_files import create_static_files_router

UI_PATH = "/ui"
STATIC_DIR = Path(__file__).parent / "static"
#: every resource from the gateway itself; no inline script, no framing by other sites
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def _security_headers(response: Response[object]) -> Response[object]:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def ui_router() -> Router:
    """``/ui`` (the page) and ``/ui/<file>``; revalidated on each load so an upgrade shows at once."""
    return create_static_files_router(
        path=UI_PATH,
        directories=[STATIC_DIR],
        html_mode=True,
        name="ui",
        opt={"public": True},
        include_in_schema=False,
        after_request=_security_headers,
        cache_control=CacheControlHeader(no_cache=True),
    )
