"""WebhookFunction: SQS deliveries queue -> sign, send to the job's callback URL, record, chain retries."""

from typing import Any

from aijobs import snapstart
from aijobs.models.messages import DeliveryMessage
from aijobs.observability import logger, metrics
from aijobs.services import get_services
from aijobs.sqs_batch import process_batch

services = get_services()  # settings validated at cold start; clients are made on first use


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_batch(event, context, body=DeliveryMessage, run=services.webhook_dispatcher.run,
                         redeliver_in=services.delivery_queue.delay_redelivery)


def warm() -> None:
    """Before a SnapStart snapshot: the dispatcher, its HTTP client's package and the batch processor, made once."""
    import aws_lambda_powertools.utilities.batch  # noqa: F401  (sqs_batch imports it at the first batch)

    _ = services.webhook_dispatcher


snapstart.register(warm)
