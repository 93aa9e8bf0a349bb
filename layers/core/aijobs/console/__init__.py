"""The web console (/console): static pages and their scripts, served by the app that serves the API.

The console is a client of the public API: its pages are one HTML shell and ES modules that call ``/v1/`` with
``fetch()`` and the API key the person signed in with, which lives in the browser's sessionStorage only. The server
renders nothing per tenant and never sees the key on these routes (it would need it to render server-side pages).
Every answer carries a Content-Security-Policy that allows scripts, styles and connections to this origin only.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from fastapi import APIRouter, Response

from aijobs.errors import NotFound

router = APIRouter(prefix="/console", include_in_schema=False)

# No inline script or style, nothing from another origin: the vendored uPlot draws with CSSOM and canvas.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY"}
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}
# The pages the shell renders (static/js/main.js picks the page module from the path).
PAGES = re.compile(r"(?:|jobs|jobs/job_[0-9A-Za-z]{1,64}|batches|schedules|usage|admin)")


@cache
def assets() -> dict[str, tuple[bytes, str]]:
    """Every file under static/ that has a known type, by its path there: read once per process, on first use."""
    found: dict[str, tuple[bytes, str]] = {}
    pending = [(resources.files(__package__) / "static", "")]
    while pending:
        folder, prefix = pending.pop()
        for entry in folder.iterdir():
            name = f"{prefix}{entry.name}"
            if entry.is_dir():
                pending.append((entry, f"{name}/"))
            elif (media_type := MEDIA_TYPES.get(f".{name.rpartition('.')[2]}")) is not None:
                found[name] = (entry.read_bytes(), media_type)
    return found


def _answer(name: str) -> Response:
    content, media_type = assets()[name]
    return Response(content, media_type=media_type, headers=HEADERS)


@router.api_route("/static/{name:path}", methods=["GET", "HEAD"])
def asset(name: str) -> Response:
    if name not in assets() or name == "index.html":
        raise NotFound("no such console file")
    return _answer(name)


@router.api_route("", methods=["GET", "HEAD"])
@router.api_route("/{page:path}", methods=["GET", "HEAD"])
def page(page: str = "") -> Response:
    if not PAGES.fullmatch(page.rstrip("/")):
        raise NotFound("no such console page")
    return _answer("index.html")
