"""The delivery path: a job's final event is queued once, sent, retried on a schedule, and every attempt recorded.

Exactly what a receiver may rely on:
- one ``webhook-id`` per final event, the same on every retry and redelivery (deduplicate by it);
- a duplicate SQS message of an attempt sends nothing (the attempt is claimed with a conditional write);
- a sender that dies mid-attempt is replaced once its lease runs out, so the event is delivered at least once;
- waits longer than SQS's 15 minutes are chained: the message carries its due time and is sent on until then.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from aijobs.batches import handle_sqs_batch, parse_message
from aijobs.errors import Conflict
from aijobs.models import DeliveryAttempt, DeliveryMessage, Redelivery
from aijobs.queues import MAX_DELAY_S, DeliveryQueue
from aijobs.store import JobStore
from aijobs.webhooks.signing import event_payload, signed_headers
from aijobs.webhooks.store import WebhookStore

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from aijobs.webhooks.sender import SendResult, WebhookSender

logger = Logger(service="aijobs")

# A sender holds an attempt this long; past it, a copy of the message may take the attempt over.
# Longer than the timeout of one send, shorter than the deliveries queue's visibility timeout.
ATTEMPT_LEASE_S = 60
# The most a receiver's Retry-After may postpone the next attempt.
MAX_RETRY_AFTER_S = 86_400


@dataclass(frozen=True)
class RetrySchedule:
    """The wait before each attempt of one event (the first included), with up to 10 % jitter."""

    delays_s: tuple[int, ...]

    def next_delay_s(self, attempts_made: int, retry_after: int | None) -> int | None:
        """Seconds until the next attempt after ``attempts_made`` attempts, or None when the schedule is spent."""
        if attempts_made >= len(self.delays_s):
            return None
        if retry_after is not None:  # the receiver said when (429 / 503)
            return min(retry_after, MAX_RETRY_AFTER_S)
        delay = self.delays_s[attempts_made]
        return round(delay * random.uniform(1.0, 1.1))


@dataclass(frozen=True)
class DeliveryService:
    """What the worker and the API do with webhooks: queue a final event, redeliver it, read the ledger."""

    store: JobStore
    ledger: WebhookStore
    queue: DeliveryQueue

    def enqueue_final_event(self, job_id: str) -> bool:
        """Queue the delivery of the job's final event unless it is queued already; True if queued now.

        Safe to call again and again (the worker calls it on every duplicate message of a finished job, which
        is how a delivery lost between the terminal write and the enqueue is made good).
        """
        job = self.store.get_job(job_id, consistent=True)
        if job is None or not job.status.is_terminal or not job.request.callback_url:
            return False
        event = self.ledger.ensure_event(job)
        if event is None or event[1]:
            return False
        webhook_id = event[0]
        # Always attempt 1: a second enqueue of the same event collides with the first at the ledger.
        self.queue.send_delivery(DeliveryMessage(job_id=job.id, webhook_id=webhook_id, attempt=1,
                                                 first_attempt=1, due_at=time.time()))
        self.ledger.mark_enqueued(job.id, webhook_id)
        logger.info("webhook queued", extra={"job_id": job.id, "webhook_id": webhook_id})
        return True

    def redeliver(self, *, tenant: str, job_id: str) -> Redelivery:
        """Queue a fresh run of the retry schedule for the job's final event, with the same ``webhook-id``."""
        job = self.store.get_tenant_job(tenant=tenant, job_id=job_id, consistent=True)
        if not job.request.callback_url:
            raise Conflict("the job has no callback_url", code="no_callback_url")
        if not job.status.is_terminal:
            raise Conflict("the job has not finished yet", code="job_not_finished")
        event = self.ledger.ensure_event(job)
        if event is None:
            raise Conflict("the job changed meanwhile; try again", code="job_changed", retryable=True)
        webhook_id = event[0]
        attempt = self.ledger.last_attempt(job.id, webhook_id) + 1
        self.queue.send_delivery(DeliveryMessage(job_id=job.id, webhook_id=webhook_id, attempt=attempt,
                                                 first_attempt=attempt, due_at=time.time()))
        self.ledger.mark_enqueued(job.id, webhook_id)
        logger.info("webhook redelivery queued", extra={"job_id": job.id, "webhook_id": webhook_id,
                                                        "attempt": attempt})
        return Redelivery(webhook_id=webhook_id, attempt=attempt)

    def list_deliveries(self, *, tenant: str, job_id: str) -> list[DeliveryAttempt]:
        return self.ledger.list_attempts(self.store.get_tenant_job(tenant=tenant, job_id=job_id, consistent=True).id)


class Deliverer:
    """The WebhookFunction: sends the attempts of the deliveries queue, records them, and chains the retries."""

    def __init__(self, *, store: JobStore, ledger: WebhookStore, queue: DeliveryQueue, sender: WebhookSender,
                 schedule: RetrySchedule) -> None:
        self.store = store
        self.ledger = ledger
        self.queue = queue
        self.sender = sender
        self.schedule = schedule

    def handle_batch(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """Process an SQS batch concurrently; failed records are reported so that only they come back."""
        return handle_sqs_batch(event, context, self.process_record)

    async def process_record(self, record: SQSRecord) -> None:
        message = await parse_message(DeliveryMessage, record, self.queue.delay_redelivery)
        wait_s = message.due_at - time.time()
        if wait_s >= 1:  # not due yet: send it on (SQS delays 15 min at most)
            await asyncio.to_thread(self.queue.send_delivery, message, delay_s=math.ceil(wait_s))
            return
        await self.deliver(message)

    async def deliver(self, message: DeliveryMessage) -> None:
        log: dict[str, Any] = {"job_id": message.job_id, "webhook_id": message.webhook_id,
                               "attempt": message.attempt}
        job = await asyncio.to_thread(self.store.get_job, message.job_id, consistent=True)
        if job is None or job.webhook_event_id != message.webhook_id or not job.request.callback_url:
            logger.info("webhook dropped: the job is gone or has another final event", extra=log)
            return
        token = await asyncio.to_thread(self.ledger.claim_attempt, message, job, lease_s=ATTEMPT_LEASE_S)
        if token is None:
            logger.info("webhook attempt already made: duplicate message", extra=log)
            await asyncio.to_thread(self._continue_chain, message)
            return
        body = event_payload(job)
        signing = [s.secret for s in await asyncio.to_thread(self.ledger.active_secrets, job.tenant)]
        headers = signed_headers(webhook_id=message.webhook_id, body=body, signing_secrets=signing,
                                 timestamp=int(time.time()))
        sent = await self.sender.send(job.request.callback_url, body, headers)
        outcome, delay_s = self._decide(message, sent)
        next_at = int(time.time()) + delay_s if delay_s is not None else None
        recorded = await asyncio.to_thread(
            self.ledger.record_attempt, message, token=token, outcome=outcome, status_code=sent.status_code,
            duration_ms=sent.duration_ms, error=sent.error, next_attempt_at=next_at)
        log |= {"outcome": outcome, "status_code": sent.status_code, "error": sent.error,
                "duration_ms": sent.duration_ms}
        if not recorded:
            logger.warning("webhook attempt taken over by another sender", extra=log)
            return
        if delay_s is not None:
            await asyncio.to_thread(self._send_next, message, delay_s)
        logger.info("webhook attempt", extra={**log, "next_attempt_in_s": delay_s})

    def _decide(self, message: DeliveryMessage, sent: SendResult) -> tuple[str, int | None]:
        if sent.ok:
            return "delivered", None
        if sent.status_code == 410:  # the receiver asked never to be called again for this
            return "stopped", None
        if sent.forbidden:
            return "failed", None
        attempts_made = message.attempt - message.first_attempt + 1
        delay_s = self.schedule.next_delay_s(attempts_made, sent.retry_after)
        return ("failed", None) if delay_s is None else ("retrying", delay_s)

    def _send_next(self, message: DeliveryMessage, delay_s: int) -> None:
        following = message.model_copy(update={"attempt": message.attempt + 1, "due_at": time.time() + delay_s})
        self.queue.send_delivery(following, delay_s=min(delay_s, MAX_DELAY_S))

    def _continue_chain(self, message: DeliveryMessage) -> None:
        """A copy of a message whose attempt is done: if the next attempt was never queued (the sender died
        between recording and queueing it), queue it now; a copy of that copy collides at the ledger."""
        made = self.ledger.get_attempt(message.job_id, message.webhook_id, message.attempt)
        if not made or made.get("outcome") != "retrying" or made.get("next_attempt_at") is None:
            return
        if self.ledger.get_attempt(message.job_id, message.webhook_id, message.attempt + 1):
            return
        following = message.model_copy(update={"attempt": message.attempt + 1,
                                                "due_at": float(made["next_attempt_at"])})
        self.queue.send_delivery(following, delay_s=math.ceil(following.due_at - time.time()))
