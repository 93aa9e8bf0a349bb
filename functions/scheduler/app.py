"""SchedulerFunction: EventBridge Scheduler -> one job per fire, through the same submit path as the API."""

from typing import Any

from aijobs.models.schedules import ScheduledFire
from aijobs.observability import logger, metrics
from aijobs.services import get_services

services = get_services()  # settings validated at cold start; clients are made on first use


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return services.schedules.fire(ScheduledFire.model_validate(event)).model_dump(exclude_none=True)
