"""The dashboard: a static page at ``/`` and its assets under ``/dashboard/``, shipped as package
data (``admin/dashboard/``), that reads and drives the broker through the admin API.

The files hold no data, so they need no token: the page asks for one when the API answers 401
and sends it on every API call.  Every response carries a strict Content-Security-Policy (our
own scripts, styles and API only; no inline code), since client ids and topics it shows are
written by whoever connects.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

__all__ = ["ASSETS", "CSP", "router"]

_FILES = resources.files(__package__ or "zanzara.admin") / "dashboard"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}

# Served by name; anything else under /dashboard/ is a 404 (no path from the request reaches
# the file system).
ASSETS = ("app.js", "style.css", "uPlot.iife.min.js", "uPlot.min.css")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The page is small and changes with the package: always revalidate.
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def _serve(name: str) -> Response:
    suffix = name[name.rindex(".") :]
    body = _FILES.joinpath(name).read_bytes()
    return Response(body, media_type=_TYPES[suffix], headers=_HEADERS)


@router.get("/")
async def page() -> Response:
    """The dashboard's page."""
    return _serve("index.html")


@router.get("/dashboard/{name}")
async def asset(name: str) -> Response:
    """One of the page's scripts and styles."""
    if name not in ASSETS:
        return JSONResponse({"code": "NOT_FOUND", "message": "no such dashboard file"}, status_code=404)
    return _serve(name)
