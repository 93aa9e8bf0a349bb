"""The sweeper: every few minutes, repairs what a dead process or a lost message left behind.

- a job ``in_progress`` past its lease (its worker died): its message is sent again, and the next worker takes it
  over (claims are conditional, so a message that turns out to be a duplicate is harmless);
- a job ``queued`` for a retry whose message did not come back: its message is sent again;
- a job ``queued`` and parked by its tenant's concurrency limit (concurrency.py) past its backstop: its message is
  sent again, in case its release was lost (it starts if its tenant has room, and parks again, in its place, if
  not). That is no repair: it is counted apart (``SweeperParkedResent``), out of ``SweeperRepairsAlarm``'s count;
- a finished job whose webhook was never queued (the deliveries queue refused it): the webhook is queued (to its
  callback_url and its tenant's subscribed endpoints);
- a job whose message reached a jobs dead-letter queue (each priority lane has one): it fails with
  ``dead_lettered``, and its webhook goes out.

It reads only what is due: the sparse sweep index (dynamo.py), at most ``limit`` jobs per shard and run, and
the dead-letter queues, at most ``limit`` messages per run. A job stays in the index while something about it can
still get stuck; a repair moves its due time on, so a job is never repaired twice in one period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from aijobs.clock import Clock, system_clock
from aijobs.models.common import ErrorDetail, Model
from aijobs.models.jobs import Job, JobStatus
from aijobs.models.messages import JobMessage
from aijobs.observability import count, logger
from aijobs.queues import JobQueue
from aijobs.store import JobStore
from aijobs.webhooks.outbox import WebhookOutbox

if TYPE_CHECKING:
    from aijobs.concurrency import WaitingJobs
    from aijobs.usage import UsageStore

DEAD_LETTERED = ErrorDetail(type="internal", code="dead_lettered", retryable=False,
                            message="the job's message could not be processed and was set aside")
# How long a message the sweeper has read stays hidden in the dead-letter queue (it is kept for the operator).
DEAD_LETTER_HIDE_S = 6 * 3600


class SweepReport(Model):
    """What one run repaired."""

    looked_at: int = 0
    resent: int = 0
    parked_resent: int = 0
    webhooks_queued: int = 0
    dead_lettered: int = 0
    cleared: int = 0


@dataclass
class DeadLetters:
    """The jobs dead-letter queues (one a priority lane), as the sweeper reads them: messages stay there for the
    operator."""

    queue_urls: list[str]
    client: Any

    def receive(self, *, limit: int) -> list[str]:
        """Up to ``limit`` bodies in all, from each queue in turn (high lane first)."""
        bodies: list[str] = []
        for url in self.queue_urls:
            while len(bodies) < limit:
                messages = self.client.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=min(10, limit - len(bodies)),
                    VisibilityTimeout=DEAD_LETTER_HIDE_S, WaitTimeSeconds=0).get("Messages", [])
                if not messages:
                    break
                bodies += [m["Body"] for m in messages]
        return bodies


@dataclass
class Sweeper:
    store: JobStore
    queue: JobQueue
    outbox: WebhookOutbox
    dead_letters: DeadLetters | None
    resend_after_s: int  # after a repair, how long before the sweeper looks at the job again
    waiting: WaitingJobs | None = None  # the parked jobs (None: no concurrency limits are kept)
    limit: int = 200
    clock: Clock = system_clock
    usage: UsageStore | None = None  # a dead-lettered job's reservation goes back to its tenant's day
    report: SweepReport = field(default_factory=SweepReport)

    def sweep(self) -> SweepReport:
        self.report = SweepReport()
        if self.dead_letters is not None:
            for body in self.dead_letters.receive(limit=self.limit):
                self._dead_lettered(body)
        for job_id in self.store.due_for_sweep(limit=self.limit):
            self.report.looked_at += 1
            job = self.store.get_job(job_id, consistent=True, with_output=False)
            if job is None:
                continue  # expired: the item and its index entry go with TTL
            self._repair(job)
        for name, value in self.report.model_dump().items():
            if value and name != "looked_at":
                count(f"Sweeper{name.title().replace('_', '')}", value)
        logger.info("sweep done", extra=self.report.model_dump())
        return self.report

    def _repair(self, job: Job) -> None:
        now = int(self.clock())
        log = {"job_id": job.id, "status": job.status.value, "attempt": job.attempt}
        if job.status is JobStatus.in_progress and (job.lease_until or 0) >= now:
            self.store.sweep_later(job, due=job.lease_until or now)  # still running: look again when its lease ends
        elif not job.status.is_terminal:
            # Its worker died (in_progress past the lease), its retry's message never came back (queued), or it is
            # parked past its backstop. Sending a parked job again is harmless: it runs once, or parks again.
            parked = job.status is JobStatus.queued and self.waiting is not None and self.waiting.is_parked(
                job.tenant, job.id, job.request.priority)
            self.queue.send_job(job.id, priority=job.request.priority)  # to its lane, as it was sent first
            self.store.sweep_later(job, due=now + self.resend_after_s)
            if parked:
                self.report.parked_resent += 1
                logger.info("parked job sent again: its backstop", extra=log)
            else:
                self.report.resent += 1
                logger.warning("stuck job sent again", extra=log)
        elif not job.webhook_enqueued and self.outbox.has_destinations(job):
            if self.outbox.enqueue_final_event(job.id):
                self.report.webhooks_queued += 1
                logger.warning("lost webhook queued", extra=log)
            elif not job.request.callback_url:
                # Kept for its tenant's endpoints, none of which takes its event's type: nothing to wait for.
                self.store.forget_sweep(job.id)
                self.report.cleared += 1
        else:
            self.store.forget_sweep(job.id)
            self.report.cleared += 1

    def _dead_lettered(self, body: str) -> None:
        try:
            job_id = JobMessage.model_validate_json(body).job_id
        except ValidationError:
            return  # poison with no job: the operator's
        job = self.store.get_job(job_id, consistent=True, with_output=False)
        if job is None or job.status.is_terminal:
            return
        if job.status is JobStatus.in_progress and (job.lease_until or 0) >= self.clock():
            return  # a worker runs it: the dead letter was a copy of its message
        if (ended := self.store.fail_stuck_job(job, DEAD_LETTERED)) is not None:
            self.report.dead_lettered += 1
            logger.error("dead-lettered job failed", extra={"job_id": job.id, "attempt": job.attempt})
            if self.usage is not None:  # it ended with no usage reported: its reservation is settled at zero
                self.usage.record_job_end(job.tenant, input_tokens=0, output_tokens=0, cost_usd=None,
                                          reservation=job.reservation)
            if self.outbox.has_destinations(job):
                self.outbox.enqueue_final_event(job.id, ended)
