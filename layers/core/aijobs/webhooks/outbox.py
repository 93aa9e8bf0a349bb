"""The webhook outbox: a finished job's final event is queued once for delivery, and can be queued again.

An event goes to the job's ``callback_url`` and to each of its tenant's webhook endpoints subscribed to its type
(endpoints.py): one delivery per destination, each with its own ``webhook-id`` (ids.destination_webhook_id), retry
schedule and ledger rows. The job's one mark, ``webhook_enqueued``, says that all of them are queued.

What the worker and the API do with webhooks; the deliveries queue's messages are sent by dispatcher.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from aijobs.clock import Clock, system_clock
from aijobs.dynamo import Page
from aijobs.errors import Conflict, RateLimited
from aijobs.ids import destination_webhook_id
from aijobs.models.jobs import Job
from aijobs.models.messages import DeliveryMessage
from aijobs.models.webhooks import DeliveryAttempt, RedeliveredTo, Redelivery
from aijobs.observability import logger
from aijobs.queues import DeliveryQueue
from aijobs.store import JobStore, has_callback
from aijobs.webhooks.endpoints import WebhookEndpoints
from aijobs.webhooks.signing import event_type
from aijobs.webhooks.store import WebhookStore

Destination = str | None  # a webhook endpoint's id, or None: the job's callback_url


@dataclass(frozen=True)
class WebhookOutbox:
    store: JobStore
    ledger: WebhookStore
    queue: DeliveryQueue
    redeliveries_per_hour: int = 5
    clock: Clock = system_clock
    endpoints: WebhookEndpoints | None = None  # None: callback_url only

    def has_destinations(self, job: Job) -> bool:
        """Whether the job's final event may go anywhere: what decides to queue it at all when a job ends.

        Free for a job with a callback_url; otherwise the tenant's endpoints, cached (at most one GetItem per
        tenant and process every few seconds), whatever their types: enqueue_final_event sorts them out.
        """
        return has_callback(job) or (self.endpoints is not None and self.endpoints.has_any(job.tenant))

    def destinations(self, job: Job, *, cached: bool = True) -> list[Destination]:
        """Where the finished job's final event goes: its callback_url first, then each subscribed endpoint."""
        found: list[Destination] = [None] if has_callback(job) else []
        if self.endpoints is not None:
            found += [e.id for e in self.endpoints.subscribed(job.tenant, event_type(job), cached=cached)]
        return found

    def enqueue_final_event(self, job_id: str, ended: Job | None = None) -> bool:
        """Queue the deliveries of the job's final event unless they are queued already; True if queued now.

        Safe to call again and again (the worker calls it on every duplicate message of a finished job, which
        is how a delivery lost between the terminal write and the enqueue is made good). False too when the
        event has nowhere to go. ``ended``: the job as the caller's terminal write left it (else it is read).
        """
        job = ended or self.store.get_job(job_id, consistent=True, with_output=False)
        if job is None or not job.status.is_terminal or not (destinations := self.destinations(job)):
            return False
        event = self.store.mark_final_event(job)
        if event is None or event.enqueued:
            return False
        # Always attempt 1: a second enqueue of the same event collides with the first at the ledger.
        for destination in destinations:
            self._send(job.id, destination_webhook_id(event.webhook_id, destination), destination, attempt=1)
        self.store.mark_webhook_enqueued(job.id, event.webhook_id)
        logger.info("webhook queued", extra={"job_id": job.id, "webhook_id": event.webhook_id,
                                             "destinations": len(destinations)})
        return True

    def redeliver(self, *, tenant: str, job_id: str) -> Redelivery:
        """Queue a fresh run of the retry schedule of the job's final event to each of its destinations now,
        each with the ``webhook-id`` it had (one redelivery of the job, counted once against the hour's)."""
        job = self.store.get_tenant_job(tenant=tenant, job_id=job_id, consistent=True)
        if not job.status.is_terminal:
            if not self.has_destinations(job):
                raise Conflict("the job has no callback_url and its tenant no webhook endpoint", code="no_callback_url")
            raise Conflict("the job has not finished yet", code="job_not_finished")
        if not (destinations := self.destinations(job, cached=False)):
            raise Conflict("the job has no callback_url and no webhook endpoint is subscribed to its event",
                           code="no_callback_url")
        if wait_s := self.store.take_redelivery(job.id, per_hour=self.redeliveries_per_hour):
            raise RateLimited(f"a job's webhook is redelivered at most {self.redeliveries_per_hour} times an hour",
                              code="too_many_redeliveries", retry_after=wait_s)
        event = self.store.mark_final_event(job)
        if event is None:
            raise Conflict("the job changed meanwhile; try again", code="job_changed", retryable=True)
        sent = [self._redeliver_to(job.id, event.webhook_id, destination) for destination in destinations]
        self.store.mark_webhook_enqueued(job.id, event.webhook_id)
        return Redelivery(webhook_id=sent[0].webhook_id, attempt=sent[0].attempt, deliveries=sent)

    def _redeliver_to(self, job_id: str, event_id: str, destination: Destination) -> RedeliveredTo:
        webhook_id = destination_webhook_id(event_id, destination)
        attempt = self.ledger.last_attempt(job_id, webhook_id) + 1
        self._send(job_id, webhook_id, destination, attempt=attempt)
        logger.info("webhook redelivery queued", extra={"job_id": job_id, "webhook_id": webhook_id,
                                                        "attempt": attempt})
        return RedeliveredTo(endpoint_id=destination, webhook_id=webhook_id, attempt=attempt)

    def _send(self, job_id: str, webhook_id: str, destination: Destination, *, attempt: int) -> None:
        self.queue.send_delivery(DeliveryMessage(job_id=job_id, webhook_id=webhook_id, endpoint_id=destination,
                                                 attempt=attempt, first_attempt=attempt, due_at=self.clock()))

    def list_deliveries(self, *, tenant: str, job_id: str, limit: int, cursor: str | None) -> Page[DeliveryAttempt]:
        job = self.store.get_tenant_job(tenant=tenant, job_id=job_id, consistent=True)
        return self.ledger.list_attempts(job.id, limit=limit, cursor=cursor)
