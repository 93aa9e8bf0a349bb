"""The worker: runs one job by id (claim, call the model, record the outcome) and says what should happen next.

It never sees SQS: ``run(job_id)`` answers an ``Outcome`` and sqs_batch.py applies it to the message. Many jobs
run concurrently on one event loop; DynamoDB and SQS calls (boto3, blocking) go to threads so they never hold it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aijobs.errors import AijobsError, ProviderError
from aijobs.models.jobs import Job
from aijobs.observability import count, log_context, logger
from aijobs.outcomes import DONE, Outcome, RetryIn
from aijobs.pricing import estimate_cost
from aijobs.providers import ModelProvider
from aijobs.retry import RetryPolicy
from aijobs.store import JobStore

if TYPE_CHECKING:
    from aijobs.webhooks.outbox import WebhookOutbox

# When a finished job's webhook could not be queued, its jobs message comes back this soon to try again.
WEBHOOK_ENQUEUE_RETRY_S = 10

ATTEMPTS_EXHAUSTED = AijobsError("the job did not finish within its attempts", code="attempts_exhausted")


class Worker:
    def __init__(self, *, store: JobStore, provider: ModelProvider, retry: RetryPolicy, lease_s: int,
                 outbox: WebhookOutbox | None = None) -> None:
        self.store = store
        self.provider = provider
        self.retry = retry
        self.lease_s = lease_s
        self.outbox = outbox

    async def run(self, job_id: str) -> Outcome:
        """Claim the job and run it; a job that is not claimable (a duplicate delivery, or finished) is left alone."""
        job = await asyncio.to_thread(self.store.claim_job, job_id, lease_s=self.lease_s)
        if job is None:
            logger.info("job not claimable: duplicate delivery or finished", extra={"job_id": job_id})
            # A finished job whose webhook was never queued (the enqueue failed, or the worker died) gets it now.
            return await self._queue_webhook(job_id)
        with log_context(job_id=job.id, tenant=job.tenant, attempt=job.attempt):
            return await self._run_claimed(job)

    async def _run_claimed(self, job: Job) -> Outcome:
        if job.attempt > self.retry.max_attempts:  # the worker died on every attempt so far
            return await self._fail(job, ATTEMPTS_EXHAUSTED)
        try:
            completion = await self.provider.complete(job.request, model=job.model)
        except ProviderError as exc:
            return await self._provider_failed(job, exc)
        usage = completion.usage
        cost = estimate_cost(job.model, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
        if not await asyncio.to_thread(self.store.complete_job, job, output_text=completion.text, usage=usage,
                                       cost_usd=cost):
            logger.info("job outcome dropped: claim lost")
            return DONE
        logger.info("job completed", extra={"output_tokens": usage.output_tokens})
        count("JobsCompleted")
        return await self._finished(job)

    async def _provider_failed(self, job: Job, exc: ProviderError) -> Outcome:
        if not exc.retryable or job.attempt >= self.retry.max_attempts:
            return await self._fail(job, exc)
        delay = self.retry.delay_s(job.attempt, exc.retry_after)
        if not await asyncio.to_thread(self.store.requeue_job, job, exc.detail()):
            return DONE  # the claim was lost: another worker has the job
        logger.warning("job will be retried", extra={"error_type": exc.type, "error_code": exc.code, "delay_s": delay})
        count("ProviderRetries")
        return RetryIn(delay)

    async def _fail(self, job: Job, error: AijobsError) -> Outcome:
        if not await asyncio.to_thread(self.store.fail_job, job, error.detail()):
            return DONE
        logger.warning("job failed", extra={"error_type": error.type, "error_code": error.code})
        count("JobsFailed", error_type=error.type)
        return await self._finished(job)

    async def _finished(self, job: Job) -> Outcome:
        return await self._queue_webhook(job.id) if job.request.callback_url else DONE

    async def _queue_webhook(self, job_id: str) -> Outcome:
        """Queue a finished job's webhook (a no-op when queued already); if that fails, the message comes back."""
        if self.outbox is None:
            return DONE
        try:
            await asyncio.to_thread(self.outbox.enqueue_final_event, job_id)
        except Exception:
            logger.exception("webhook not queued; the jobs message will come back for it", extra={"job_id": job_id})
            return RetryIn(WEBHOOK_ENQUEUE_RETRY_S)
        return DONE
