"""The job domain: the one submit path and the reads. The API, the batch endpoint and schedules call these."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from aijobs.clock import Clock, system_clock
from aijobs.dynamo import Page
from aijobs.errors import AijobsError, Conflict, InvalidRequest, ServiceUnavailable, from_validation_errors
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
        """Send a job's message, then store the job as queued: nothing is stored that would never run.

        A message whose job could not be stored finds no job and is dropped by the worker. A schedule passes its
        ``schedule_id``, and for a fire a ``job_id`` derived from the scheduled time: if that job exists already
        (the fire was delivered again), ``Conflict`` (``job_exists``) is raised and nothing is sent.
        """
        job = self._new_job(tenant, request, schedule_id=schedule_id, job_id=job_id)
        if job_id is not None and self.store.get_job(job_id, consistent=True) is not None:
            raise Conflict("a job with this id exists", code="job_exists")
        self._enqueue([job])
        self._store([job])
        logger.info("job submitted", extra={"job_id": job.id, "tenant": tenant, "model": job.model})
        count("JobsSubmitted")
        return job

    def submit_jobs(self, *, tenant: str, items: list[dict[str, Any]]) -> list[Job | AijobsError]:
        """Validate each item on its own; send the valid ones' messages in batches, then store them in batches.

        All or nothing: if any message cannot be sent, or the jobs cannot be stored, no job is stored and the
        whole batch is a retryable 503 (a retry with the same ``Idempotency-Key`` then runs afresh).
        """
        results: list[Job | AijobsError] = []
        for item in items:
            try:
                results.append(self._new_job(tenant, JobRequest.model_validate(item)))
            except ValidationError as exc:
                results.append(from_validation_errors(exc.errors()))
            except InvalidRequest as exc:
                results.append(exc)
        jobs = [r for r in results if isinstance(r, Job)]
        if jobs:
            self._enqueue(jobs)
            self._store(jobs)
            count("JobsSubmitted", len(jobs))
        return results

    def _enqueue(self, jobs: list[Job]) -> None:
        try:
            if len(jobs) == 1:
                self.queue.send_job(jobs[0].id)
            else:
                self.queue.send_jobs([job.id for job in jobs])
        except Exception:
            logger.exception("enqueue failed: nothing stored", extra={"jobs": len(jobs)})
            raise ServiceUnavailable("the job could not be queued; try again", code="enqueue_failed",
                                     retry_after=1) from None

    def _store(self, jobs: list[Job]) -> None:
        try:
            if len(jobs) == 1:
                self.store.put_new_job(jobs[0])
            else:
                self.store.put_new_jobs(jobs)
        except Conflict:
            raise  # another delivery of the same schedule fire stored it first; its message is harmless
        except Exception:
            logger.exception("jobs not stored: their messages will find no job", extra={"jobs": len(jobs)})
            with contextlib.suppress(Exception):  # a batch may be stored in part: take back what was
                self.store.delete_jobs([job.id for job in jobs])
            raise ServiceUnavailable("the job could not be stored; try again", code="store_failed",
                                     retry_after=1) from None

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
