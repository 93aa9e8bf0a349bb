"""The FastAPI application, served by Mangum on Lambda and by uvicorn in the local stack."""

from __future__ import annotations

import importlib
import json
import threading
import warnings
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from pydantic.warnings import UnsupportedFieldAttributeWarning
from starlette._utils import get_route_path
from starlette.types import Receive, Scope, Send

from aijobs.api.errors import install_error_handlers, is_openai_path
from aijobs.api.middleware import RequestContext

# FastAPI ignores this warning where it makes a parameter's validator (a body's ``alias``, which its adapter does not
# use); as every model's validators are built at first use (aijobs.models.common.Model), so is that adapter: outside
# FastAPI's filter. The same warning is ignored then.
warnings.filterwarnings("ignore", category=UnsupportedFieldAttributeWarning)

# Every router of the app, in the order the app includes them (the order Starlette tries their routes in): its module,
# the module's routers, and the literal start of every path they hold (the part before the first parameter). A test
# (tests/unit/test_lazy_routes.py) holds this table to the routers themselves.
ROUTERS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("aijobs.api.routes.health", ("router",), ("/healthz",)),
    ("aijobs.api.routes.jobs", ("router",), ("/v1/jobs",)),
    ("aijobs.api.routes.streams", ("router",), ("/v1/jobs/",)),
    ("aijobs.api.routes.responses", ("router",), ("/v1/responses",)),
    ("aijobs.api.routes.models", ("router",), ("/v1/models",)),
    ("aijobs.api.routes.embeddings", ("router",), ("/v1/embeddings",)),
    ("aijobs.api.routes.schedules", ("router",), ("/v1/schedules",)),
    ("aijobs.api.routes.prompts", ("router",), ("/v1/prompts",)),
    ("aijobs.api.routes.batches", ("router",), ("/v1/batches",)),
    ("aijobs.api.routes.collections", ("router",), ("/v1/collections",)),
    ("aijobs.api.routes.webhooks", ("secrets_router", "endpoints_router", "deliveries_router"),
     ("/v1/webhook-secrets", "/v1/webhook-endpoints", "/v1/jobs/")),
    ("aijobs.api.routes.usage", ("router",), ("/v1/usage",)),
    ("aijobs.api.routes.admin", ("router",), ("/v1/admin",)),
    # the web console: pages that call the API above (not in its schema)
    ("aijobs.console", ("router",), ("/console",)),
)

# API Gateway takes up to 10 MB; a job is far smaller. Batches of 100 get the larger bound.
MAX_BODY_BYTES = 256 * 1024
MAX_BATCH_BODY_BYTES = 4 * 1024 * 1024


def body_limit(path: str) -> int:
    return MAX_BATCH_BODY_BYTES if path.endswith("/batch") else MAX_BODY_BYTES


class App(FastAPI):
    """The FastAPI app, whose route modules may be imported when a request first needs them (``lazy_routes``)."""

    routes_loader: LazyRoutes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            self.routes_loader.load_for(get_route_path(scope))  # the path Starlette's router matches
        await super().__call__(scope, receive, send)


class LazyRoutes:
    """The app's routers, each included when a request's path could match one of its routes (or all at once).

    Each path is matched by the same routes, tried in the same order, as when every router is included at the start:
    a request loads every router with a path the request's path could match (``ROUTERS``), and the loaded routers'
    routes stay in ``ROUTERS``' order after FastAPI's own (the OpenAPI document and its pages). A request for no
    router's path loads nothing, and is answered 404 as before.
    """

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._builtin = list(app.router.routes)  # FastAPI's own routes (/openapi.json, /docs), tried first
        self._routes: dict[int, list[Any]] = {}  # ROUTERS' index -> what including its routers added to the app
        self._routers: dict[int, list[APIRouter]] = {}
        self._lock = threading.Lock()  # the local stack serves from several threads
        app.state.api_routes = []  # what errors.py's 405 reads: the loaded routes (every one the path could match)

    @property
    def complete(self) -> bool:
        return len(self._routes) == len(ROUTERS)

    def load_for(self, path: str) -> None:
        """Include every router with a route that ``path`` could match (a literal start ``path`` begins with, or
        ``path`` plus a slash, as Starlette's redirect of a missing trailing slash tries)."""
        wanted = [index for index, (_, _, starts) in enumerate(ROUTERS) if index not in self._routes
                  and any(path.startswith(start.rstrip("/")) for start in starts)]
        if wanted:
            self._load(wanted)

    def load_all(self) -> None:
        if not self.complete:
            self._load([index for index in range(len(ROUTERS)) if index not in self._routes])

    def _load(self, indexes: list[int]) -> None:
        with self._lock:
            for index in indexes:
                if index in self._routes:
                    continue
                module_name, names, _ = ROUTERS[index]
                module = importlib.import_module(module_name)
                routers: list[APIRouter] = [getattr(module, name) for name in names]
                before = len(self._app.router.routes)
                for router in routers:
                    self._app.include_router(router)
                self._routes[index] = self._app.router.routes[before:]
                self._routers[index] = routers
            loaded = sorted(self._routes)
            self._app.router.routes[:] = self._builtin + [route for index in loaded for route in self._routes[index]]
            self._app.state.api_routes[:] = [route for index in loaded for router in self._routers[index]
                                             for route in router.routes if isinstance(route, APIRoute)]


def create_app(*, lazy_routes: bool = False) -> App:
    """The API. ``lazy_routes`` (the Lambda functions): each route module is imported by the first request that
    could match one of its routes, not at cold start (issue 16); the routes and their answers are the same."""
    app = App(title="aijobs", version="1", summary="Asynchronous AI-inference jobs")
    install_error_handlers(app)
    app.routes_loader = LazyRoutes(app)
    if not lazy_routes:
        app.routes_loader.load_all()
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.add_middleware(RequestContext, body_limit=body_limit)
    return app


def _openapi(app: App) -> dict[str, Any]:
    """FastAPI's document, without the 422 it adds to routes that never send one: OpenAI's face answers a bad request
    with a 400 in OpenAI's shape (api/errors.py), and FastAPI's validation body is never sent. Every route is in it,
    loaded or not yet."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        app.routes_loader.load_all()
        document = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        for path, operations in document["paths"].items():
            if is_openai_path(path):
                for operation in operations.values():
                    operation["responses"].pop("422", None)
        schemas = document.get("components", {}).get("schemas", {})
        if "HTTPValidationError" not in json.dumps(document["paths"]):
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
        app.openapi_schema = document
    return app.openapi_schema
