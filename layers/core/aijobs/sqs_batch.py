"""The one SQS adapter of the queue-fed functions: an SQS event in, the batch item failures out.

Each record's body is parsed into its message model by Powertools' batch processor and handed to the domain,
which answers an ``Outcome``; the records of one batch run concurrently on one event loop. ``Done`` deletes a
message, ``RetryIn`` sets its visibility and reports it failed, and a body that never parses is ``Poison``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Json, create_model

from aijobs.observability import logger
from aijobs.outcomes import Done, Outcome, Poison, RetryIn

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parser.models import SqsRecordModel


# (receipt_handle, seconds, queue_arn): make a received message visible again in that many seconds
Redeliver = Callable[[str, int, str], None]


class NotDone(Exception):
    """The record is reported failed, with its visibility already set."""


@lru_cache
def record_model[M: BaseModel](body: type[M]) -> type[SqsRecordModel]:
    """An SQS record whose body is JSON of ``body``."""
    from aws_lambda_powertools.utilities.parser.models import SqsRecordModel

    return create_model(f"{body.__name__}Record", __base__=SqsRecordModel, body=(Json[body], ...))  # type: ignore[misc, valid-type]


def process_batch[M: BaseModel](event: dict[str, Any], context: Any, *, body: type[M],
                                run: Callable[[M], Awaitable[Outcome]],
                                redeliver_in: Redeliver) -> dict[str, Any]:
    """Run the batch's records concurrently; the records not done are reported so that only they come back.

    ``redeliver_in(receipt_handle, seconds, queue_arn)`` changes a received message's visibility, on the queue it
    came from (the record's ``eventSourceARN``: a function fed by several queues, the jobs lanes, gets them mixed).
    """
    # Loaded at the first batch rather than at import (about 0.2 s): the cold start pays it either way.
    from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    model = record_model(body)

    async def handle(record: Any) -> None:
        outcome = await run(record.body)
        if isinstance(outcome, Done):
            return
        seconds = outcome.seconds if isinstance(outcome, RetryIn) else 0
        if isinstance(outcome, Poison):
            logger.error("poison message", extra={"message_id": record.messageId, "reason": outcome.reason})
        await asyncio.to_thread(redeliver_in, record.receiptHandle, seconds, record.eventSourceARN)
        raise NotDone(record.messageId)

    # A processor per invocation: it holds the batch's state, and the local stack runs batches in threads.
    processor = AsyncBatchProcessor(event_type=EventType.SQS, model=model, raise_on_entire_batch_failure=False)
    with processor(event["Records"], handle, context):
        processor.async_process()
    for failed in processor.fail_messages:
        if isinstance(failed, SQSRecord):  # its body did not parse: the processor never handed it over
            logger.error("unparseable message", extra={"message_id": failed.message_id,
                                                       "queue": failed.event_source_arn})
            _redeliver_poison(redeliver_in, failed.receipt_handle, failed.event_source_arn)
    return dict(processor.response())


def _redeliver_poison(redeliver_in: Redeliver, receipt_handle: str, queue_arn: str) -> None:
    try:
        redeliver_in(receipt_handle, 0, queue_arn)
    except Exception:  # reported failed all the same: it comes back after its visibility timeout instead
        logger.exception("poison message not made visible again")
