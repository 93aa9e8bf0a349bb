"""WorkerFunction: SQS jobs queues (one a priority lane) -> claim, call the model, record the outcome (partial batch
failures)."""

from typing import Any

from aijobs import snapstart
from aijobs.models.messages import JobMessage
from aijobs.observability import logger, metrics
from aijobs.services import get_services
from aijobs.sqs_batch import process_batch

services = get_services()  # settings validated at cold start; clients are made on first use


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_batch(event, context, body=JobMessage,
                         run=lambda message: services.worker.run(message.job_id, sent_at=message.sent_at),
                         redeliver_in=services.job_queue.delay_redelivery)


def warm() -> None:
    """Before a SnapStart snapshot: the worker, its model client's package and the batch processor, made once."""
    import aws_lambda_powertools.utilities.batch  # noqa: F401  (sqs_batch imports it at the first batch)

    from aijobs.providers import preload_model_client

    _ = services.worker
    preload_model_client()


snapstart.register(warm)
