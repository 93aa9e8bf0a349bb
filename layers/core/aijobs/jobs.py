"""The job domain: the one submit path and the reads. The API, the batch endpoint and schedules call these."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from aijobs.clock import Clock, system_clock
from aijobs.dynamo import Page
from aijobs.errors import AijobsError, InvalidRequest, ServiceUnavailable, from_validation_errors
from aijobs.ids import new_job_id
from aijobs.models.jobs import Job, JobRequest, JobStatus, JobStatusItem
from aijobs.observability import count, logger
from aijobs.queues import JobQueue
from aijobs.store import JobStore
from aijobs.webhooks.guard import CallbackGuard


@dataclass(frozen=True)
class JobService:
    store: JobStore
    queue: JobQueue
    default_model: str
    retention_s: int
    callbacks: CallbackGuard = field(default_factory=CallbackGuard)
    clock: Clock = system_clock

    def _new_job(self, tenant: str, request: JobRequest, *, schedule_id: str | None = None,
                 job_id: str | None = None) -> Job:
        if request.callback_url is not None:
            self.callbacks.check_url(request.callback_url)  # a forbidden URL is a 422 and nothing is written
        now = int(self.clock())
        return Job(id=job_id or new_job_id(), tenant=tenant, status=JobStatus.queued,
                   model=request.model or self.default_model, request=request, created_at=now,
                   expires_at=now + self.retention_s, schedule_id=schedule_id)

    def submit_job(self, *, tenant: str, request: JobRequest, schedule_id: str | None = None,
                   job_id: str | None = None) -> Job:
        """Store a queued job, then enqueue it. If the enqueue fails the job is removed: nothing half-written.

        A schedule passes its ``schedule_id``, and for a fire a ``job_id`` derived from the scheduled time: if
        that job exists already, ``Conflict`` (``job_exists``) is raised before anything is written or sent.
        """
        job = self._new_job(tenant, request, schedule_id=schedule_id, job_id=job_id)
        self.store.put_new_job(job)
        try:
            self.queue.send_job(job.id)
        except Exception:
            logger.exception("enqueue failed", extra={"job_id": job.id})
            self.store.delete_jobs([job.id])
            raise ServiceUnavailable("the job could not be queued; try again", code="enqueue_failed",
                                     retry_after=1) from None
        logger.info("job submitted", extra={"job_id": job.id, "tenant": tenant, "model": job.model})
        count("JobsSubmitted")
        return job

    def submit_jobs(self, *, tenant: str, items: list[dict[str, Any]]) -> list[Job | AijobsError]:
        """Validate each item on its own; store the valid ones with batch writes and enqueue them in batches."""
        results: list[Job | AijobsError] = []
        for item in items:
            try:
                results.append(self._new_job(tenant, JobRequest.model_validate(item)))
            except ValidationError as exc:
                results.append(from_validation_errors(exc.errors()))
            except InvalidRequest as exc:
                results.append(exc)
        jobs = [r for r in results if isinstance(r, Job)]
        self.store.put_new_jobs(jobs)
        unsent = set(self.queue.send_jobs([job.id for job in jobs]))
        if unsent:
            self.store.delete_jobs(sorted(unsent))
        count("JobsSubmitted", len(jobs) - len(unsent))
        unqueued = ServiceUnavailable("the job could not be queued; try again", code="enqueue_failed")
        return [unqueued if isinstance(r, Job) and r.id in unsent else r for r in results]

    def get_job(self, *, tenant: str, job_id: str, consistent: bool = False) -> Job:
        return self.store.get_tenant_job(tenant=tenant, job_id=job_id, consistent=consistent)

    def list_jobs(self, *, tenant: str, status: JobStatus | None, limit: int, cursor: str | None,
                  schedule_id: str | None = None) -> Page[Job]:
        return self.store.list_jobs(tenant=tenant, status=status, limit=limit, cursor=cursor, schedule_id=schedule_id)

    def wait_for_job(self, *, tenant: str, job_id: str, timeout_s: float) -> Job:
        """Poll until the job is terminal or the time is up; returns the job as last read."""
        deadline = time.monotonic() + timeout_s
        delay = 0.05
        while True:
            job = self.get_job(tenant=tenant, job_id=job_id, consistent=True)
            remaining = deadline - time.monotonic()
            if job.status.is_terminal or remaining <= 0:
                return job
            time.sleep(min(delay, remaining))
            delay = min(delay * 1.5, 0.5)

    def job_statuses(self, *, tenant: str, job_ids: list[str]) -> list[JobStatusItem]:
        """The status of each id, in order; unknown ids (and other tenants' ids) are ``not_found``."""
        found = self.store.get_jobs([i for i in job_ids if i.startswith("job_")])
        return [JobStatusItem(id=i, status=job.status if (job := found.get(i)) and job.tenant == tenant
                              else "not_found") for i in job_ids]
