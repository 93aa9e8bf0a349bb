"""The job domain: the one submit path and the reads. The API, the batch endpoint and schedules call these."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from aijobs.errors import (
    AijobsError,
    InvalidRequest,
    MalformedRequest,
    PayloadTooLarge,
    ServiceUnavailable,
)
from aijobs.ids import new_job_id
from aijobs.models import Job, JobRequest, JobStatus
from aijobs.queues import JobQueue
from aijobs.store import JobStore
from aijobs.webhooks.guard import CallbackGuard

logger = Logger(service="aijobs")


@dataclass(frozen=True)
class JobService:
    store: JobStore
    queue: JobQueue
    default_model: str
    retention_s: int
    callbacks: CallbackGuard = field(default_factory=CallbackGuard)

    def _new_job(self, tenant: str, request: JobRequest, *, schedule_id: str | None = None,
                 job_id: str | None = None) -> Job:
        if request.callback_url is not None:
            self.callbacks.check_url(request.callback_url)  # a forbidden URL is a 422 and nothing is written
        now = int(time.time())
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
        return job

    def submit_jobs(self, *, tenant: str, items: list[dict[str, Any]]) -> list[Job | AijobsError]:
        """Validate each item on its own; store the valid ones with batch writes and enqueue them in batches."""
        results: list[Job | AijobsError] = []
        for item in items:
            try:
                results.append(self._new_job(tenant, JobRequest.model_validate(item)))
            except ValidationError as exc:
                results.append(error_from_validation(exc.errors()))
            except InvalidRequest as exc:
                results.append(exc)
        jobs = [r for r in results if isinstance(r, Job)]
        self.store.put_new_jobs(jobs)
        unsent = set(self.queue.send_jobs([job.id for job in jobs]))
        if unsent:
            self.store.delete_jobs(sorted(unsent))
        unqueued = ServiceUnavailable("the job could not be queued; try again", code="enqueue_failed")
        return [unqueued if isinstance(r, Job) and r.id in unsent else r for r in results]

    def get_job(self, *, tenant: str, job_id: str, consistent: bool = False) -> Job:
        return self.store.get_tenant_job(tenant=tenant, job_id=job_id, consistent=consistent)

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

    def job_statuses(self, *, tenant: str, job_ids: list[str]) -> list[tuple[str, JobStatus | None]]:
        found = self.store.get_jobs([i for i in job_ids if i.startswith("job_")])
        return [(i, job.status if (job := found.get(i)) and job.tenant == tenant else None) for i in job_ids]


def error_from_validation(errors: Any) -> AijobsError:
    """The typed error for pydantic errors: names the fields, never echoes the input."""
    errors = list(errors)
    if any(e.get("type") == "json_invalid" for e in errors):
        return MalformedRequest("the request body is not valid JSON", code="invalid_json")
    parts = []
    for error in errors[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    if any(e.get("type") == "too_large" for e in errors):
        return PayloadTooLarge("; ".join(parts), code="input_too_large")
    return InvalidRequest("; ".join(parts), code="invalid_fields")
