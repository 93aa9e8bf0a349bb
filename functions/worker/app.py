"""WorkerFunction: SQS jobs queue -> claim, call the model, record the outcome (partial batch failures)."""

from typing import Any

from aijobs.services import get_services

services = get_services()  # settings validated at cold start; clients are made on first use


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return services.worker.handle_batch(event, context)
