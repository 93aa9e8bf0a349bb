"""ApiFunction: API Gateway (HTTP API) -> FastAPI through Mangum.

Each route module is imported by the first request that needs it (aijobs/api: ``lazy_routes``), not at cold start;
under SnapStart every one is loaded, with the services, before the snapshot (aijobs/snapstart.py).
"""

from mangum import Mangum

from aijobs import snapstart
from aijobs.api import create_app
from aijobs.observability import logger, metrics
from aijobs.settings import get_settings

get_settings()  # validate the environment at cold start
api = create_app(lazy_routes=True)
handler = logger.inject_lambda_context(clear_state=True)(metrics.log_metrics(Mangum(api, lifespan="off")))


def warm() -> None:
    """Before a SnapStart snapshot: what a first request would load (every route, the services they use) and build
    (the routes' validators, made at first use as their models are: the OpenAPI document builds every one)."""
    from aijobs.services import get_services

    api.routes_loader.load_all()
    api.openapi()
    services = get_services()
    _ = services.jobs, services.tenants, services.idempotency, services.limiter


snapstart.register(warm)
