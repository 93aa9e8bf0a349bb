"""The Lambda functions' app imports each route module on the first request that could need it (issue 16): it must
route and answer every request as the app that includes every router at the start, and document every route."""

from __future__ import annotations

import importlib

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from aijobs.api import ROUTERS, create_app

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _paths() -> list[str]:
    """Every route's path with its parameters filled in, and near misses (a trailing slash, an unknown tail)."""
    paths = {route.path.replace("{", "").replace("}", "").replace(":path", "")
             for route in create_app().state.api_routes}
    return sorted(paths | {p + "/" for p in paths} | {p + "/nope" for p in paths} | {"/", "/v1", "/v2/jobs"})


def test_every_route_starts_with_what_its_entry_says() -> None:
    # Given each router of the table, When its routes are read, Then each path begins with a start of its entry
    for module_name, names, starts in ROUTERS:
        module = importlib.import_module(module_name)
        for name in names:
            for route in getattr(module, name).routes:
                literal = route.path.split("{")[0]
                assert literal.startswith(tuple(s.rstrip("/") for s in starts)), (module_name, route.path)


def test_lazy_app_documents_every_route() -> None:
    assert create_app(lazy_routes=True).openapi() == create_app().openapi()


def test_lazy_app_loads_only_the_routers_a_path_could_match() -> None:
    app = create_app(lazy_routes=True)
    with TestClient(app) as client:
        client.get("/healthz")
    assert {route.path for route in app.state.api_routes} == {"/healthz"}


@pytest.mark.parametrize("path", _paths())
def test_lazy_app_answers_each_path_and_method_as_the_eager_one(path: str) -> None:
    # Given a fresh lazy app per request (nothing loaded yet) and the eager app, no key (nothing reaches a store)
    with TestClient(create_app()) as eager:
        for method in METHODS:
            with TestClient(create_app(lazy_routes=True)) as lazy:
                # When the same request is sent to both
                want, got = eager.request(method, path), lazy.request(method, path)
            # Then the status, the Allow header of a 405 and the error's code are the same
            assert (got.status_code, got.headers.get("allow")) == (want.status_code, want.headers.get("allow")), \
                (method, path)
            assert got.content == want.content or got.status_code == want.status_code == 200 or (
                got.json().get("error", {}).get("code") == want.json().get("error", {}).get("code")), (method, path)


def test_api_routes_are_the_routers_routes() -> None:
    assert all(isinstance(route, APIRoute) for route in create_app().state.api_routes)
