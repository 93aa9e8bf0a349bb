"""SQS batches of the queue-fed functions: records run concurrently and fail one by one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ValidationError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

logger = Logger(service="aijobs")
Message = TypeVar("Message", bound=BaseModel)


class PoisonMessage(Exception):
    """A message that can never be processed; SQS moves it to the DLQ after maxReceiveCount receives."""


def handle_sqs_batch(event: dict[str, Any], context: Any,
                     record_handler: Callable[[SQSRecord], Awaitable[None]]) -> dict[str, Any]:
    """Run the batch's records concurrently; the failed ones are reported so that only they come back."""
    # Imported here: the API function loads modules that use this, but never runs a batch.
    from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType, async_process_partial_response

    # A processor per invocation: the local stack runs several batches at once in one process.
    processor = AsyncBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(async_process_partial_response(event=event, record_handler=record_handler,
                                               processor=processor, context=context))


async def parse_message(model: type[Message], record: SQSRecord,
                        redeliver_in: Callable[[str, int], None]) -> Message:
    """The record's body as ``model``; a body that can never parse is poison."""
    try:
        return model.model_validate_json(record.body)
    except ValidationError:
        logger.error("unparseable message", extra={"message_id": record.message_id,
                                                   "queue": record.event_source_arn})
        # Visible again at once, so the redrive to the DLQ takes seconds rather than hours.
        await asyncio.to_thread(redeliver_in, record.receipt_handle, 0)
        raise PoisonMessage(record.message_id) from None
