"""SweeperFunction: EventBridge rate(5 minutes) -> repair stuck jobs, lost messages and lost webhooks."""

from typing import Any

from aijobs.observability import logger, metrics
from aijobs.services import get_services

services = get_services()  # settings validated at cold start; clients are made on first use


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return services.sweeper.sweep().model_dump()
