"""StreamFunction: function URL (RESPONSE_STREAM) -> Lambda Web Adapter -> uvicorn (run.sh) -> this app, unbuffered.

The same FastAPI app as ApiFunction's, served without Mangum (which buffers a whole response), so an SSE stream
reaches the client as it is written. It serves every route, so a client can use this one base URL for everything.
"""

from starlette.types import Receive, Scope, Send

from aijobs.api import create_app
from aijobs.observability import metrics
from aijobs.settings import get_settings

get_settings()  # validate the environment at cold start: the adapter sends nothing until /healthz answers
api = create_app(lazy_routes=True)  # each route module imported by the first request that needs it


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The API, its metrics flushed (EMF) once a request is over, as ``metrics.log_metrics`` does per invocation.

    Lambda runs one invocation at a time in an instance, so a flush holds exactly that request's counts. A request
    that counted nothing flushes nothing (Powertools would warn on stderr each time).
    """
    try:
        await api(scope, receive, send)
    finally:
        if scope["type"] == "http" and metrics.metric_set:
            metrics.flush_metrics()
