"""The webhook dispatcher: makes one attempt of a final event's delivery, records it, and chains the next.

Exactly what a receiver may rely on:
- one ``webhook-id`` per final event and destination (the job's callback_url, or one of its tenant's webhook
  endpoints), the same on every retry and redelivery (deduplicate by it);
- a duplicate message of an attempt sends nothing (the attempt is claimed with a conditional write);
- a sender that dies mid-attempt is replaced once its lease runs out, so the event is delivered at least once;
- waits longer than SQS's 15 minutes are chained: the message carries its due time and is sent on until then.

So that a slow receiver holds up its own webhooks rather than everyone's, each attempt is bounded by the sender's
deadline, and at most ``HostSlots.per_host`` attempts to one receiver host are in flight in a process. A message
over that cap is not attempted: it is sent again with a short delay (not a visibility change, which would count a
receive toward the dead-letter queue), and it is not an attempt (no ledger row, the schedule does not move).
"""

from __future__ import annotations

import asyncio
import math
import random
from typing import TYPE_CHECKING

from aijobs.clock import Clock, system_clock
from aijobs.ids import destination_webhook_id
from aijobs.models.messages import DeliveryMessage
from aijobs.observability import count, log_context, logger
from aijobs.outcomes import DONE, Outcome
from aijobs.queues import MAX_DELAY_S, DeliveryQueue
from aijobs.retry import RetrySchedule
from aijobs.store import JobStore
from aijobs.webhooks.endpoints import WebhookEndpoints
from aijobs.webhooks.signing import event_payload, event_type, signed_headers
from aijobs.webhooks.slots import HostSlots
from aijobs.webhooks.store import WebhookStore

if TYPE_CHECKING:
    from aijobs.models.jobs import Job
    from aijobs.webhooks.sender import SendResult, WebhookSender

# A sender holds an attempt this long; past it, a copy of the message may take the attempt over.
# Longer than the timeout of one send, shorter than the deliveries queue's visibility timeout.
ATTEMPT_LEASE_S = 60


class WebhookDispatcher:
    def __init__(self, *, store: JobStore, ledger: WebhookStore, queue: DeliveryQueue, sender: WebhookSender,
                 schedule: RetrySchedule, slots: HostSlots, busy_delay_s: int = 2,
                 endpoints: WebhookEndpoints | None = None, clock: Clock = system_clock) -> None:
        self.store = store
        self.ledger = ledger
        self.queue = queue
        self.sender = sender
        self.schedule = schedule
        self.slots = slots
        self.busy_delay_s = busy_delay_s
        self.endpoints = endpoints
        self.clock = clock

    async def run(self, message: DeliveryMessage) -> Outcome:
        """Make the message's attempt once it is due; a message not due yet is sent on (SQS delays 15 min at most)."""
        wait_s = message.due_at - self.clock()
        if wait_s >= 1:
            await asyncio.to_thread(self.queue.send_delivery, message, delay_s=math.ceil(wait_s))
            return DONE
        with log_context(job_id=message.job_id, webhook_id=message.webhook_id, endpoint_id=message.endpoint_id,
                         attempt=message.attempt):
            await self._attempt(message)
        return DONE

    async def _attempt(self, message: DeliveryMessage) -> None:
        job = await asyncio.to_thread(self.store.get_job, message.job_id, consistent=True)
        if job is None or job.webhook_event_id is None or (
                destination_webhook_id(job.webhook_event_id, message.endpoint_id) != message.webhook_id):
            logger.info("webhook dropped: the job is gone or has another final event")
            return
        url = await asyncio.to_thread(self._url, job, message.endpoint_id)
        if url is None:
            logger.info("webhook dropped: its destination is gone (a deleted endpoint, or one no longer subscribed)")
            return
        with self.slots.take(url) as taken:
            if taken:
                await self._send(message, job, url)
            else:
                await asyncio.to_thread(self._defer, message)

    def _url(self, job: Job, endpoint_id: str | None) -> str | None:
        """Where the attempt goes: the job's callback_url, or the endpoint as it is now (read uncached)."""
        if endpoint_id is None:
            return job.request.callback_url
        if self.endpoints is None:
            return None
        subscribed = self.endpoints.subscribed(job.tenant, event_type(job), cached=False)
        return next((e.url for e in subscribed if e.id == endpoint_id), None)

    def _defer(self, message: DeliveryMessage) -> None:
        """The receiver's host has its cap of attempts in flight: the same attempt comes back in a few seconds."""
        # Jittered, so that a backlog to one host comes back spread out rather than as one batch.
        delay_s = self.busy_delay_s + random.randint(0, self.busy_delay_s)
        self.queue.send_delivery(message, delay_s=delay_s)
        logger.info("webhook deferred: its receiver host has its cap of attempts in flight",
                    extra={"in_flight_cap": self.slots.per_host, "retry_in_s": delay_s})
        count("WebhookDeferrals")

    async def _send(self, message: DeliveryMessage, job: Job, url: str) -> None:
        claim = await asyncio.to_thread(self.ledger.claim_attempt, message, event_type=event_type(job),
                                        expires_at=job.expires_at, lease_s=ATTEMPT_LEASE_S)
        if claim is None:
            logger.info("webhook attempt already made: duplicate message")
            await asyncio.to_thread(self._continue_chain, message)
            return
        body = event_payload(job)
        signing = [s.secret for s in await asyncio.to_thread(self.ledger.active_secrets, job.tenant)]
        headers = signed_headers(webhook_id=message.webhook_id, body=body, signing_secrets=signing,
                                 timestamp=int(self.clock()))
        sent = await self.sender.send(url, body, headers)
        outcome, delay_s = self._decide(message, sent)
        next_at = int(self.clock()) + delay_s if delay_s is not None else None
        recorded = await asyncio.to_thread(
            self.ledger.record_attempt, message, claim=claim, outcome=outcome, status_code=sent.status_code,
            duration_ms=sent.duration_ms, error=sent.error, next_attempt_at=next_at)
        result = {"outcome": outcome, "status_code": sent.status_code, "error": sent.error,
                  "duration_ms": sent.duration_ms}
        if not recorded:
            logger.warning("webhook attempt taken over by another sender", extra=result)
            return
        if delay_s is not None:
            await asyncio.to_thread(self._send_next, message, delay_s)
        logger.info("webhook attempt", extra={**result, "next_attempt_in_s": delay_s})
        count("WebhookAttempts")
        if not sent.ok:
            count("WebhookFailures", outcome=outcome)

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
        following = message.model_copy(update={"attempt": message.attempt + 1, "due_at": self.clock() + delay_s})
        self.queue.send_delivery(following, delay_s=min(delay_s, MAX_DELAY_S))

    def _continue_chain(self, message: DeliveryMessage) -> None:
        """A copy of a message whose attempt is done: if the next attempt was never queued (the sender died
        between recording and queueing it), queue it now; a copy of that copy collides at the ledger."""
        made = self.ledger.get_attempt(message.job_id, message.webhook_id, message.attempt)
        if made is None or made.outcome != "retrying" or made.next_attempt_at is None:
            return
        if self.ledger.get_attempt(message.job_id, message.webhook_id, message.attempt + 1):
            return
        following = message.model_copy(update={"attempt": message.attempt + 1, "due_at": float(made.next_attempt_at)})
        self.queue.send_delivery(following, delay_s=math.ceil(following.due_at - self.clock()))
