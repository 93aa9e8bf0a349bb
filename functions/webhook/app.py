"""WebhookFunction: SQS deliveries queue -> sign, send to the job's callback URL, record, chain retries."""

from typing import Any

from aijobs.services import get_services

services = get_services()  # settings validated at cold start; clients are made on first use


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return services.webhook_deliverer.handle_batch(event, context)
