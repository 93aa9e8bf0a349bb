"""The webhook outbox: a finished job's final event is queued once for delivery, and can be queued again.

What the worker and the API do with webhooks; the deliveries queue's messages are sent by dispatcher.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from aijobs.clock import Clock, system_clock
from aijobs.dynamo import Page
from aijobs.errors import Conflict, RateLimited
from aijobs.models.messages import DeliveryMessage
from aijobs.models.webhooks import DeliveryAttempt, Redelivery
from aijobs.observability import logger
from aijobs.queues import DeliveryQueue
from aijobs.store import JobStore
from aijobs.webhooks.store import WebhookStore


@dataclass(frozen=True)
class WebhookOutbox:
    store: JobStore
    ledger: WebhookStore
    queue: DeliveryQueue
    redeliveries_per_hour: int = 5
    clock: Clock = system_clock

    def enqueue_final_event(self, job_id: str) -> bool:
        """Queue the delivery of the job's final event unless it is queued already; True if queued now.

        Safe to call again and again (the worker calls it on every duplicate message of a finished job, which
        is how a delivery lost between the terminal write and the enqueue is made good).
        """
        job = self.store.get_job(job_id, consistent=True, with_output=False)
        if job is None or not job.status.is_terminal or not job.request.callback_url:
            return False
        event = self.store.mark_final_event(job)
        if event is None or event.enqueued:
            return False
        # Always attempt 1: a second enqueue of the same event collides with the first at the ledger.
        self._send(job.id, event.webhook_id, attempt=1)
        logger.info("webhook queued", extra={"job_id": job.id, "webhook_id": event.webhook_id})
        return True

    def redeliver(self, *, tenant: str, job_id: str) -> Redelivery:
        """Queue a fresh run of the retry schedule for the job's final event, with the same ``webhook-id``."""
        job = self.store.get_tenant_job(tenant=tenant, job_id=job_id, consistent=True)
        if not job.request.callback_url:
            raise Conflict("the job has no callback_url", code="no_callback_url")
        if not job.status.is_terminal:
            raise Conflict("the job has not finished yet", code="job_not_finished")
        if wait_s := self.store.take_redelivery(job.id, per_hour=self.redeliveries_per_hour):
            raise RateLimited(f"a job's webhook is redelivered at most {self.redeliveries_per_hour} times an hour",
                              code="too_many_redeliveries", retry_after=wait_s)
        event = self.store.mark_final_event(job)
        if event is None:
            raise Conflict("the job changed meanwhile; try again", code="job_changed", retryable=True)
        attempt = self.ledger.last_attempt(job.id, event.webhook_id) + 1
        self._send(job.id, event.webhook_id, attempt=attempt)
        logger.info("webhook redelivery queued", extra={"job_id": job.id, "webhook_id": event.webhook_id,
                                                        "attempt": attempt})
        return Redelivery(webhook_id=event.webhook_id, attempt=attempt)

    def _send(self, job_id: str, webhook_id: str, *, attempt: int) -> None:
        self.queue.send_delivery(DeliveryMessage(job_id=job_id, webhook_id=webhook_id, attempt=attempt,
                                                 first_attempt=attempt, due_at=self.clock()))
        self.store.mark_webhook_enqueued(job_id, webhook_id)

    def list_deliveries(self, *, tenant: str, job_id: str, limit: int, cursor: str | None) -> Page[DeliveryAttempt]:
        job = self.store.get_tenant_job(tenant=tenant, job_id=job_id, consistent=True)
        return self.ledger.list_attempts(job.id, limit=limit, cursor=cursor)
