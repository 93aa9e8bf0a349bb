"""ApiFunction: API Gateway (HTTP API) -> FastAPI through Mangum."""

from mangum import Mangum

from aijobs.api import create_app
from aijobs.observability import logger, metrics
from aijobs.settings import get_settings

get_settings()  # validate the environment at cold start
handler = logger.inject_lambda_context(clear_state=True)(metrics.log_metrics(Mangum(create_app(), lifespan="off")))
