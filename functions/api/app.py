"""ApiFunction: API Gateway (HTTP API) -> FastAPI through Mangum."""

from mangum import Mangum

from aijobs.api import create_app
from aijobs.settings import get_settings

get_settings()  # validate the environment at cold start
handler = Mangum(create_app(), lifespan="off")
