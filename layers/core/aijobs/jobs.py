"""The job domain: the one submit path and the reads. The API, the batch endpoint and schedules call these."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from aijobs.clock import Clock, system_clock
from aijobs.dynamo import Page
from aijobs.errors import (
    AijobsError,
    Conflict,
    InvalidRequest,
    ModelNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    from_validation_errors,
)
from aijobs.idempotency import RequestKey
from aijobs.ids import new_job_id
from aijobs.models.jobs import Job, JobRequest, JobStatus, JobStatusItem, Reservation, StatusDetails
from aijobs.models.tenants import Limits
from aijobs.observability import count, logger
from aijobs.queues import MAX_DELAY_S, JobQueue
from aijobs.store import WATCH_RENEW_S, JobFilters, JobStore
from aijobs.webhooks.guard import CallbackGuard
from aijobs.webhooks.outbox import WebhookOutbox

if TYPE_CHECKING:
    from aijobs.batches import BatchStore
    from aijobs.prompts import PromptService
    from aijobs.rates import Limiter


@dataclass(frozen=True)
class JobService:
    store: JobStore
    queue: JobQueue
    default_model: str
    retention_s: int
    request_key_ttl_s: int = 86_400  # how long a keyed request's job ids are kept (the idempotency window)
    outbox: WebhookOutbox | None = None  # queues the webhook of a job cancelled here
    callbacks: CallbackGuard = field(default_factory=CallbackGuard)
    clock: Clock = system_clock
    limiter: Limiter | None = None  # the token rate: each new job reserves its estimate before it is sent
    # A tenant's limits in force (TenantService.limits); None: no limits (tests of the job domain alone)
    limits: Callable[[str], Limits] | None = None
    prompts: PromptService | None = None  # resolves a request's ``prompt`` (None: a request naming one is refused)
    batches: BatchStore | None = None  # counts a batch's jobs into its total (None: no batches)

    def resolve_request(self, tenant: str, request: JobRequest) -> tuple[JobRequest, str | None, int | None]:
        """The request the job runs, and the prompt id and version it was made from: a request naming a registry
        prompt is resolved now (aijobs/prompts.py: 404 for an unknown prompt, version or label, 422
        ``prompt_variables`` naming missing or unexpected variables); any other is itself."""
        if request.prompt is None:
            return request, None, None
        if self.prompts is None:
            raise InvalidRequest("prompts are not available here", code="prompts_unavailable")
        from aijobs.prompts import apply

        resolved = self.prompts.resolve(request.prompt, tenant)
        return apply(resolved, request), resolved.prompt_id, resolved.version

    def check_request(self, tenant: str, request: JobRequest) -> JobRequest:
        """What submitting ``request`` would refuse, refused now (a schedule checks its job): the resolved request."""
        if request.collection is not None:
            raise InvalidRequest("ingest and answer jobs are made by /v1/collections, not scheduled",
                                 code="kind_not_submittable")
        resolved, _, _ = self.resolve_request(tenant, request)
        self.check_model(tenant, resolved)
        if resolved.callback_url is not None:
            self.callbacks.check_url(resolved.callback_url)
        return resolved

    def check_model(self, tenant: str, request: JobRequest) -> str:
        """The job's model (the default when it names none); ``ModelNotAllowed`` if the tenant's limits exclude it."""
        model = request.model or self.default_model
        allowed = self.limits(tenant).allowed_models if self.limits is not None else None
        if allowed is not None and model not in allowed:
            raise ModelNotAllowed(model)
        return model

    def _new_job(self, tenant: str, request: JobRequest, *, schedule_id: str | None = None,
                 batch_id: str | None = None, job_id: str | None = None, retry_of: str | None = None,
                 ran: tuple[str | None, int | None] = (None, None), internal: bool = False, **face: Any) -> Job:
        """``ran``: the prompt id and version of a job run again (its request was resolved when it was made);
        ``internal``: made by /v1/collections (or a retry), the only makers of ingest and answer jobs;
        ``face``: how another API shows the job (``surface="responses", background=False``: see models/jobs.py)."""
        if request.collection is not None and not internal and retry_of is None:
            raise InvalidRequest("ingest and answer jobs are made by /v1/collections (adding documents, searching "
                                 "with generate: true), not submitted", code="kind_not_submittable")
        request, prompt_id, prompt_version = self.resolve_request(tenant, request)  # 404/422: nothing is written
        if prompt_id is None:
            prompt_id, prompt_version = ran
        model = self.check_model(tenant, request)  # 403, and nothing is written
        if request.callback_url is not None:
            self.callbacks.check_url(request.callback_url)  # a forbidden URL is a 422 and nothing is written
        now = int(self.clock())
        return Job(id=job_id or new_job_id(), tenant=tenant, status=JobStatus.queued,
                   model=model, request=request, created_at=now,
                   expires_at=now + self.retention_s, schedule_id=schedule_id, batch_id=batch_id, retry_of=retry_of,
                   prompt_id=prompt_id, prompt_version=prompt_version, **face)

    def submit_job(self, *, tenant: str, request: JobRequest, schedule_id: str | None = None,
                   job_id: str | None = None, key: RequestKey | None = None, retry_of: str | None = None,
                   defer: bool = False, ran: tuple[str | None, int | None] = (None, None), internal: bool = False,
                   **face: Any) -> Job:
        """Send a job's message, then store the job as queued: nothing is stored that would never run.

        A message whose job could not be stored finds no job and is dropped by the worker. A schedule passes its
        ``schedule_id``, and for a fire a ``job_id`` derived from the scheduled time: if that job exists already
        (the fire was delivered again), ``Conflict`` (``job_exists``) is raised and nothing is sent. A request
        with an ``Idempotency-Key`` passes its ``key``: a retry of it names the same job (see ``_submit``).
        ``defer``: a job over a limit waits whatever its ``on_limit`` (a schedule's fire has nobody to answer).
        A request naming a registry ``prompt`` is resolved here (``resolve_request``); ``ran`` is for a retry.
        ``face``: how another API shows the job (``surface="responses", background=False``: see models/jobs.py).
        """
        job = self._new_job(tenant, request, schedule_id=schedule_id, job_id=job_id, retry_of=retry_of, ran=ran,
                            internal=internal, **face)
        if job_id is not None and self.store.get_job(job_id, consistent=True) is not None:
            raise Conflict("a job with this id exists", code="job_exists")
        [result] = self._submit([job], key, defer=defer)
        if isinstance(result, AijobsError):
            raise result
        job = result
        logger.info("job submitted", extra={"job_id": job.id, "tenant": tenant, "model": job.model})
        return job

    def submit_jobs(self, *, tenant: str, items: list[dict[str, Any]], key: RequestKey | None = None,
                    batch_id: str | None = None) -> list[Job | AijobsError]:
        """Validate each item on its own; send the valid ones' messages in batches, then store them in batches.

        All or nothing: if any message cannot be sent, or the jobs cannot be stored, no job is stored and the
        whole batch is a retryable 503; a retry with the same ``Idempotency-Key`` names the same jobs. The jobs
        are in ``batch_id`` (made by BatchService), counted into its total before they are sent.
        """
        results: list[Job | AijobsError] = []
        for item in items:
            try:
                results.append(self._new_job(tenant, JobRequest.model_validate(item), batch_id=batch_id))
            except ValidationError as exc:
                results.append(from_validation_errors(exc.errors()))
            except (InvalidRequest, ModelNotAllowed, NotFound, PayloadTooLarge) as exc:
                results.append(exc)
        submitted = iter(self._submit([r for r in results if isinstance(r, Job)], key))
        return [next(submitted) if isinstance(r, Job) else r for r in results]

    def _submit(self, jobs: list[Job], key: RequestKey | None, *, defer: bool = False) -> list[Job | AijobsError]:
        """Admit, send, then store, the jobs; answers them as stored, or the error of each job a limit refused.

        With a ``key``, the jobs take the ids the key reserved. On a retry whose first try died after sending or
        storing, those jobs that were stored are answered as they are now (they run once) and only the others
        are sent and stored.
        """
        if not jobs:
            return []
        stored: dict[str, Job] = {}
        if key is not None:
            ids = self.store.reserve_job_ids(key, [job.id for job in jobs],
                                             expires_at=int(self.clock()) + self.request_key_ttl_s)
            if ids != [job.id for job in jobs]:
                jobs = [job.model_copy(update={"id": job_id}) for job, job_id in zip(jobs, ids, strict=True)]
                stored = self.store.get_jobs(ids, consistent=True)
        new, refused = self._admit([job for job in jobs if job.id not in stored], defer=defer)
        if new:
            try:
                self._count_in_batch(new, chunk=jobs[0].id)  # 404/409 when the batch is gone or cancelled
                self._enqueue(new)
                self._store(new)
            except Exception:
                self._release(new)  # nothing was submitted: its reservations go back to the minute
                self._count_in_batch(new, chunk=jobs[0].id, undo=True)
                raise
            count("JobsSubmitted", len(new))
            if self.prompts is not None:  # each version's count of jobs: how a weighted label split them
                self.prompts.count_jobs(new[0].tenant, [(job.prompt_id, job.prompt_version) for job in new
                                                        if job.prompt_id is not None and job.prompt_version])
        admitted = {job.id: job for job in new}
        return [stored.get(job.id) or refused.get(job.id) or admitted[job.id] for job in jobs]

    def _count_in_batch(self, jobs: list[Job], *, chunk: str, undo: bool = False) -> None:
        """Count a chunk's new jobs into their batch's total before they are sent (so no job ends uncounted), once
        per chunk: ``chunk`` is the id of its first job, which a keyed retry names again."""
        batch_id = jobs[0].batch_id
        if batch_id is None or self.batches is None:
            return
        if undo:
            with contextlib.suppress(Exception):  # best effort: should it fail, the batch shows more queued jobs
                self.batches.remove_jobs(batch_id=batch_id, chunk=chunk, jobs=len(jobs))
        else:
            self.batches.add_jobs(tenant=jobs[0].tenant, batch_id=batch_id, chunk=chunk, jobs=len(jobs))

    def _admit(self, jobs: list[Job], *, defer: bool = False) -> tuple[list[Job], dict[str, AijobsError]]:
        """The jobs the tenant's token rate and budget admit, each with its reservation; the jobs they defer (over a
        limit with ``on_limit: "defer"``: queued with ``status_details``, and no reservation yet); and the errors
        of the others."""
        if self.limiter is None:
            return jobs, {}
        from aijobs.rates import OverBudget, OverRate

        if len(jobs) > 1 and (reservations := self._reserve_all(jobs)) is not None:
            return [job.model_copy(update={"reservation": r}) for job, r in zip(jobs, reservations, strict=True)], {}
        admitted: list[Job] = []
        refused: dict[str, AijobsError] = {}
        for job in jobs:
            try:
                admitted.append(job.model_copy(update={"reservation": self.limiter.reserve(job)}))
            except (OverRate, OverBudget) as exc:
                if exc.not_before is not None and (defer or self._on_limit(job) == "defer"):
                    details = StatusDetails(reason=exc.code, not_before=exc.not_before)
                    admitted.append(job.model_copy(update={"status_details": details}))
                    count("JobsDeferred", reason=exc.code)
                else:
                    refused[job.id] = exc
            except AijobsError as exc:
                refused[job.id] = exc
        return admitted, refused

    def _reserve_all(self, jobs: list[Job]) -> list[Reservation] | None:
        """The jobs' reservations in one write when they all fit; None: reserve them one by one."""
        assert self.limiter is not None
        try:
            return self.limiter.reserve_all(jobs)
        except AijobsError:  # an estimate the limiter refuses: each job's own error, one by one
            return None

    def _on_limit(self, job: Job) -> str:
        if job.request.on_limit is not None:
            return job.request.on_limit
        return self.limits(job.tenant).on_limit if self.limits is not None else "reject"

    def _release(self, jobs: list[Job], *, submitted: bool = False) -> None:
        for job in jobs:
            if self.limiter is not None and job.reservation is not None:
                try:
                    self.limiter.release(job.tenant, job.reservation, submitted=submitted)
                except Exception:  # it ends with its minute anyway
                    logger.exception("reservation not released", extra={"job_id": job.id})

    def _enqueue(self, jobs: list[Job]) -> None:
        """Send the jobs' messages, each to its priority's lane; a deferred job's is delayed to when it may start, or,
        past SQS's delays, left to the sweeper (its sweep index entry is due then)."""
        ready = [(job.id, job.request.priority) for job in jobs if job.status_details is None]
        try:
            if len(ready) == 1:
                self.queue.send_job(ready[0][0], priority=ready[0][1])
            elif ready:
                self.queue.send_jobs(ready)
            now = int(self.clock())
            for job in jobs:
                if job.status_details is not None and job.status_details.not_before - now <= MAX_DELAY_S:
                    self.queue.send_job(job.id, priority=job.request.priority,
                                        delay_s=job.status_details.not_before - now)
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

    def cancel_job(self, *, tenant: str, job_id: str) -> Job:
        """Cancel a queued or running job: at once, with a conditional write, so a worker that finishes meanwhile
        and the cancel cannot both win. Cancelling a cancelled job answers it again; a finished one is a conflict.
        Its ``job.cancelled`` webhook is queued as for any outcome (by the sweeper, should that fail here)."""
        for _ in range(3):  # a worker may claim or finish the job between the read and the write
            job = self.get_job(tenant=tenant, job_id=job_id, consistent=True)
            if job.status is JobStatus.cancelled:
                return job
            if job.status.is_terminal:
                raise Conflict(f"the job is {job.status.value} already", code="job_finished")
            if (ended := self.store.cancel_job(job)) is not None:
                logger.info("job cancelled", extra={"job_id": job.id, "was": job.status.value})
                count("JobsCancelled")
                if job.status is JobStatus.queued and job.attempt == 0:  # it never ran: its tokens go back
                    self._release([job], submitted=True)
                if self.outbox is not None and self.outbox.has_destinations(job):
                    try:
                        self.outbox.enqueue_final_event(job.id, ended)
                    except Exception:
                        logger.exception("webhook not queued; the sweeper will queue it", extra={"job_id": job.id})
                return self.get_job(tenant=tenant, job_id=job_id, consistent=True)
        raise Conflict("the job changed meanwhile; try again", code="job_changed", retryable=True)

    def retry_job(self, *, tenant: str, job_id: str, key: RequestKey | None = None) -> Job:
        """Run a failed or cancelled job again through the one submit path: a new job whose ``retry_of`` names it.

        The original keeps its outcome and names its retry (``retried_by``), set before the new job is sent, so
        a retry interrupted between the two is finished by the next call rather than made twice.
        """
        original = self.get_job(tenant=tenant, job_id=job_id, consistent=True)
        if original.request.kind == "ingest":
            raise Conflict("an ingest job is not retried: add its documents again", code="job_not_retryable")
        if original.status not in (JobStatus.failed, JobStatus.cancelled):
            raise Conflict(f"only a failed or cancelled job can be retried; this one is {original.status.value}",
                           code="job_not_retryable")
        retry_id = original.retried_by
        if retry_id is None:
            retry_id = new_job_id()
            if key is not None:
                [retry_id] = self.store.reserve_job_ids(key, [retry_id],
                                                        expires_at=int(self.clock()) + self.request_key_ttl_s)
            if not self.store.mark_retried(original, retry_id):
                original = self.get_job(tenant=tenant, job_id=job_id, consistent=True)
                if original.retried_by is None:
                    raise Conflict("the job changed meanwhile; try again", code="job_changed", retryable=True)
                retry_id = original.retried_by
        if (existing := self.store.get_job(retry_id, consistent=True)) is not None:
            if key is None or existing.retry_of != original.id:
                raise Conflict(f"the job was retried already, as {retry_id}", code="already_retried")
            return existing
        try:
            return self.submit_job(tenant=tenant, request=original.request, schedule_id=original.schedule_id,
                                   job_id=retry_id, retry_of=original.id,
                                   ran=(original.prompt_id, original.prompt_version))
        except Conflict as exc:  # a concurrent call submitted it first
            if exc.code != "job_exists":
                raise
            return self.store.get_tenant_job(tenant=tenant, job_id=retry_id, consistent=True)

    def delete_content(self, *, tenant: str, job_id: str) -> Job:
        """Delete a job's input and output (a privacy request before retention ends); a job that has not ended is
        cancelled first, and a running one's stopped call given time to record its usage (whose output is then
        not kept). What the job was, used and cost stays. Deleting again answers the job as it is."""
        from aijobs.streams import CANCEL_SETTLE_S

        job = self.get_job(tenant=tenant, job_id=job_id, consistent=True)
        if not job.status.is_terminal:
            job = self.cancel_job(tenant=tenant, job_id=job_id)
        deadline = self.clock() + CANCEL_SETTLE_S
        while job.status is JobStatus.cancelled and job.attempt and job.usage is None and self.clock() < deadline:
            time.sleep(0.2)  # its worker stops within about half a second and records what the call used
            job = self.get_job(tenant=tenant, job_id=job_id, consistent=True)
        if job.content_deleted_at is None and self.store.delete_content(job):
            logger.info("job content deleted", extra={"job_id": job.id})
        return self.get_job(tenant=tenant, job_id=job_id, consistent=True)

    def get_job(self, *, tenant: str, job_id: str, consistent: bool = False) -> Job:
        return self.store.get_tenant_job(tenant=tenant, job_id=job_id, consistent=consistent)

    def read_job(self, *, tenant: str, job_id: str) -> Job:
        """The job as ``GET /v1/jobs/{id}`` shows it: a running one with its output so far (from its output log)."""
        job = self.get_job(tenant=tenant, job_id=job_id)
        if job.status is JobStatus.in_progress:
            self.watch(job)
            text, job.progress = self.store.partial_output(job)
            job.output_text = text or None
        return job

    def watch(self, job: Job) -> None:
        """Someone looks at the running job: its worker flushes its output as it comes for the next WATCHED_FOR_S
        (renewed once the last look is WATCH_RENEW_S old: one write per WATCH_RENEW_S, however often it is read)."""
        if job.watched_at is None or self.clock() - job.watched_at >= WATCH_RENEW_S:
            self.store.mark_watched(job)

    def list_jobs(self, *, tenant: str, status: JobStatus | None, limit: int, cursor: str | None,
                  schedule_id: str | None = None, batch_id: str | None = None,
                  filters: JobFilters = JobFilters()) -> Page[Job]:
        return self.store.list_jobs(tenant=tenant, status=status, limit=limit, cursor=cursor, schedule_id=schedule_id,
                                    batch_id=batch_id, filters=filters)

    def job_statuses(self, *, tenant: str, job_ids: list[str]) -> list[JobStatusItem]:
        """The status of each id, in order; unknown ids (and other tenants' ids) are ``not_found``."""
        found = self.store.get_states([i for i in job_ids if i.startswith("job_")])
        return [JobStatusItem(id=i, status=state.status if (state := found.get(i)) and state.tenant == tenant
                              else "not_found") for i in job_ids]
