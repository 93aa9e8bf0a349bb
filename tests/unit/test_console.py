"""The console's routes: its pages and files with their types and a strict Content-Security-Policy, nothing else
served, no inline script, nothing from another origin, and the key kept out of URLs (aijobs/console)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aijobs import console
from aijobs.api import create_app

STATIC = Path(console.__file__).parent / "static"
OURS = [path for path in STATIC.rglob("*") if path.suffix in {".html", ".js", ".css"} and "vendor" not in path.parts]


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app())


PAGES = ["/console", "/console/", "/console/jobs", "/console/jobs/job_01JABCDEFGHJKMNPQRSTVWXYZ0", "/console/batches",
         "/console/schedules", "/console/usage", "/console/admin"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_is_the_shell_with_a_strict_policy(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "default-src 'none'" in policy and "unsafe" not in policy
    assert answer.headers["cache-control"] == "no-store" and answer.headers["x-frame-options"] == "DENY"
    assert 'src="/console/static/js/main.js"' in answer.text


@pytest.mark.parametrize(("name", "media_type"), [("js/main.js", "text/javascript; charset=utf-8"),
                                                  ("js/pages/job.js", "text/javascript; charset=utf-8"),
                                                  ("css/console.css", "text/css; charset=utf-8"),
                                                  ("vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
                                                  ("vendor/uPlot.min.css", "text/css; charset=utf-8")])
def test_files_are_served_with_their_type(client: TestClient, name: str, media_type: str) -> None:
    answer = client.get(f"/console/static/{name}")
    assert answer.status_code == 200 and answer.headers["content-type"] == media_type
    assert answer.content == (STATIC / name).read_bytes()
    assert "content-security-policy" in answer.headers


@pytest.mark.parametrize("path", ["/console/nope", "/console/static/nope.js",
                                  "/console/static/../__init__.py", "/console/static/%2e%2e/__init__.py",
                                  "/console/static/vendor/VENDOR.md", "/console/static/index.html",
                                  "/console/jobs/not_a_job"])
def test_anything_else_is_a_typed_404(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 404 and answer.json()["error"]["type"] == "not_found"


@pytest.mark.parametrize("path", ["/console", "/console/jobs", "/console/static/js/api.js"])
def test_another_method_is_a_405_that_names_the_allowed_ones(client: TestClient, path: str) -> None:
    answer = client.post(path)
    assert answer.status_code == 405 and answer.headers["allow"] == "GET, HEAD"


def test_the_console_is_not_in_the_api_document(client: TestClient) -> None:
    assert not [path for path in client.get("/openapi.json").json()["paths"] if path.startswith("/console")]


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and not values.get("src"):
            self.inline.append("script")
        self.inline += [name for name in values if name.startswith("on") or name == "style"]
        self.urls += [value for name, value in values.items() if name in {"src", "href"} and value]


def test_the_shell_has_no_inline_script_or_style_and_nothing_from_elsewhere() -> None:
    markup = _Markup()
    markup.feed((STATIC / "index.html").read_text())
    assert markup.inline == []
    assert markup.urls and all(url == "/console" or url.startswith(("/console/", "#", "data:")) for url in markup.urls)


def test_no_file_of_ours_names_another_origin() -> None:
    assert OURS and not [path.name for path in OURS if re.search(r"https?://", path.read_text())]


def test_the_key_is_read_and_sent_in_one_module_only() -> None:
    """api.js keeps the key in sessionStorage and puts it in the Authorization header; no other module touches
    either, so no page can put it in a URL or a log."""
    touching = sorted(path.name for path in OURS if re.search(r"sessionStorage\.|Bearer|localStorage",
                                                              path.read_text()))
    assert touching == ["api.js"]
    assert "localStorage" not in (STATIC / "js" / "api.js").read_text()


def test_every_module_a_script_imports_exists() -> None:
    for path in OURS:
        for target in re.findall(r"""(?:from|import\()\s*["'](\.{1,2}/[^"']+)["']""", path.read_text()):
            assert (path.parent / target).resolve().is_file(), f"{path.name} imports {target}"
