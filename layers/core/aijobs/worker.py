"""The worker: claims jobs from SQS records, calls the model, records the outcome.

The records of one batch run concurrently on one event loop; DynamoDB and SQS calls (boto3, blocking) go
to threads so they never hold the loop.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from aijobs.batches import handle_sqs_batch, parse_message
from aijobs.errors import ProviderError
from aijobs.models import Job, JobError, JobMessage
from aijobs.pricing import estimate_cost
from aijobs.providers import ModelProvider
from aijobs.queues import JobQueue
from aijobs.store import JobStore

if TYPE_CHECKING:
    from aijobs.webhooks.delivery import DeliveryService

logger = Logger(service="aijobs")

# When a finished job's webhook could not be queued, its jobs message comes back this soon to try again.
WEBHOOK_ENQUEUE_RETRY_S = 10


class RetryLater(Exception):
    """The job went back to the queue; its message reappears after the backoff."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_delay_s: float
    max_delay_s: int

    def delay_s(self, attempt: int, retry_after: int | None) -> int:
        backoff = self.base_delay_s * 2 ** (attempt - 1) * random.uniform(1.0, 1.25)
        return int(min(self.max_delay_s, max(backoff, retry_after or 0)))


class Worker:
    def __init__(self, *, store: JobStore, queue: JobQueue, provider: ModelProvider, retry: RetryPolicy,
                 lease_s: int, deliveries: DeliveryService | None = None) -> None:
        self.store = store
        self.queue = queue
        self.provider = provider
        self.retry = retry
        self.lease_s = lease_s
        self.deliveries = deliveries

    def handle_batch(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """Process an SQS batch; failed records are reported so that only they come back."""
        return handle_sqs_batch(event, context, self.process_record)

    async def process_record(self, record: SQSRecord) -> None:
        message = await parse_message(JobMessage, record, self.queue.delay_redelivery)
        job = await asyncio.to_thread(self.store.claim_job, message.job_id, lease_s=self.lease_s)
        if job is None:
            logger.info("job not claimable: duplicate delivery or finished", extra={"job_id": message.job_id})
            # A finished job whose webhook was never queued (the enqueue failed, or the worker died) gets it now.
            await self._queue_webhook(message.job_id, record.receipt_handle)
            return
        await self.run_job(job, record.receipt_handle)

    async def _finished(self, job: Job, receipt_handle: str) -> None:
        if job.request.callback_url:
            await self._queue_webhook(job.id, receipt_handle)

    async def _queue_webhook(self, job_id: str, receipt_handle: str) -> None:
        """Queue a finished job's webhook (a no-op when queued already); if that fails, the message comes back."""
        if self.deliveries is None:
            return
        try:
            await asyncio.to_thread(self.deliveries.enqueue_final_event, job_id)
        except Exception:
            logger.exception("webhook not queued; the jobs message will come back for it", extra={"job_id": job_id})
            await asyncio.to_thread(self.queue.delay_redelivery, receipt_handle, WEBHOOK_ENQUEUE_RETRY_S)
            raise RetryLater(job_id) from None

    async def run_job(self, job: Job, receipt_handle: str) -> None:
        log = {"job_id": job.id, "tenant": job.tenant, "attempt": job.attempt}
        if job.attempt > self.retry.max_attempts:  # the worker died on every attempt so far
            error = JobError(type="internal", code="attempts_exhausted", retryable=False,
                             message="the job did not finish within its attempts")
            if await asyncio.to_thread(self.store.fail_job, job, error):
                await self._finished(job, receipt_handle)
            logger.warning("job failed", extra={**log, "error_code": error.code})
            return
        try:
            completion = await self.provider.complete(job.request, model=job.model)
        except ProviderError as exc:
            await self._provider_failed(job, exc, receipt_handle, log)
            return
        usage = completion.usage
        cost = estimate_cost(job.model, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
        done = await asyncio.to_thread(self.store.complete_job, job, output_text=completion.text,
                                       usage=usage, cost_usd=cost)
        logger.info("job completed" if done else "job outcome dropped: claim lost", extra={
            **log, "output_tokens": usage.output_tokens})
        if done:
            await self._finished(job, receipt_handle)

    async def _provider_failed(self, job: Job, exc: ProviderError, receipt_handle: str,
                               log: dict[str, Any]) -> None:
        error = JobError.model_validate(exc.to_dict())
        log = {**log, "error_type": exc.type, "error_code": exc.code}
        if exc.retryable and job.attempt < self.retry.max_attempts:
            delay = self.retry.delay_s(job.attempt, exc.retry_after)
            if await asyncio.to_thread(self.store.requeue_job, job, error):
                await asyncio.to_thread(self.queue.delay_redelivery, receipt_handle, delay)
                logger.warning("job will be retried", extra={**log, "delay_s": delay})
                raise RetryLater(job.id)
            return
        if await asyncio.to_thread(self.store.fail_job, job, error):
            await self._finished(job, receipt_handle)
        logger.warning("job failed", extra=log)
