"""Batches: the batch item's one writer (``BatchStore``) and the batch domain (``BatchService``).

A batch's counts are counters on its item, never a read of its jobs: ``GET /v1/batches/{id}`` is one GetItem
whatever the batch's size. The job store adds to them, once per transition, after the conditional write that made
the transition won (store.py): a job that is in no batch costs nothing; one in a batch costs one small UpdateItem
per counted transition (its first claim, its end, and a cancelled run's cost), or a share of one: the counts of a
batch's jobs that a process makes at once (a worker's batch of them starting or ending) go in one write.
"""

from __future__ import annotations

import base64
import contextlib
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aijobs.clock import Clock, system_clock
from aijobs.dynamo import (
    BATCH_RESULTS,
    TENANT_INDEX,
    Page,
    add_counters,
    batch_key,
    batches_partition,
    conditional,
    query_index,
    update_request,
)
from aijobs.errors import AijobsError, Conflict, InvalidRequest, NotFound
from aijobs.idempotency import RequestKey
from aijobs.ids import new_batch_id
from aijobs.models.batches import Batch
from aijobs.models.jobs import Job, JobStatus, Usage
from aijobs.observability import count, logger

if TYPE_CHECKING:
    from aijobs.jobs import JobService

CANCEL_BUDGET_S = 15  # a cancel request's time for cancelling jobs (API Gateway answers in 29 s); then `cancelling`
CANCEL_PAGE = 100
# A results cursor is a position in the batch's ended jobs (dynamo.batch_result_key), or ``~<time>~``: after those
# that ended by then.
# One write of a batch's counters at a time in a process: its jobs' counts that arrive meanwhile go in the next.
# Batches share these locks by hash; a process writes a few batches at once.
WRITE_LOCKS = 16
RESULT_POSITION = re.compile(rf"{BATCH_RESULTS}\d{{10}}(#job_[0-9A-Z]{{26}}|{BATCH_RESULTS})")


@dataclass
class _Counts:
    """Counters of one batch added while its write before was under way: written together by the first adder."""

    counters: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    job_ids: list[str] = field(default_factory=list)
    written: threading.Event = field(default_factory=threading.Event)


class BatchStore:
    """The batch item's one writer: its creation, its chunks' totals, its jobs' counters, its cancel."""

    def __init__(self, *, table: Any, retention_s: int, clock: Clock = system_clock) -> None:
        self._table = table
        self._retention_s = retention_s
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[str, _Counts] = {}  # by batch: counts waiting for its next write
        self._writing = [threading.Lock() for _ in range(WRITE_LOCKS)]

    def _now(self) -> int:
        return int(self._clock())

    def create(self, *, tenant: str, batch_id: str) -> None:
        """Make an empty batch; a keyed retry that made it already finds it as it is."""
        now = self._now()
        # Its counters are made by their first ADD (numbers; a model's Decimal would be stored as text).
        conditional(self._table.put_item, Item={**batch_key(batch_id), "gsi1pk": batches_partition(tenant),
                                                "gsi1sk": batch_id, "id": batch_id, "tenant": tenant,
                                                "created_at": now, "expires_at": now + self._retention_s},
                    ConditionExpression="attribute_not_exists(pk)")

    def get(self, batch_id: str, *, consistent: bool = False) -> Batch | None:
        item = self._table.get_item(Key=batch_key(batch_id), ConsistentRead=consistent).get("Item")
        return self._live(item)

    def _live(self, item: dict[str, Any] | None) -> Batch | None:
        if not item or ("expires_at" in item and int(item["expires_at"]) < self._now()):
            return None  # TTL deletes lazily
        return Batch.model_validate(item)

    def get_tenant_batch(self, *, tenant: str, batch_id: str, consistent: bool = False) -> Batch:
        """The tenant's batch; another tenant's does not exist for this one (404, never 403)."""
        batch = self.get(batch_id, consistent=consistent) if batch_id.startswith("bat_") else None
        if batch is None or batch.tenant != tenant:
            raise NotFound("no such batch", code="batch_not_found")
        return batch

    def list_batches(self, *, tenant: str, limit: int, cursor: str | None) -> Page[Batch]:
        page = query_index(self._table, index=TENANT_INDEX, partition=batches_partition(tenant), limit=limit,
                           cursor=cursor)
        return Page([batch for item in page.items if (batch := self._live(item))], page.next_cursor)

    def add_jobs(self, *, tenant: str, batch_id: str, chunk: str, jobs: int) -> None:
        """Count a chunk's jobs into the batch's total, once per ``chunk`` (its first job's id, which a keyed retry
        names again): counted before the jobs are sent, so a job can never end before it is counted.
        ``Conflict`` (``batch_cancelled``) once the batch's cancel was asked for."""
        now = self._now()
        if conditional(self._table.update_item, Key=batch_key(batch_id),
                       UpdateExpression="ADD #total :n, #chunks :chunk SET #expires_at = :expires",
                       ConditionExpression="#tenant = :tenant AND attribute_not_exists(#cancel_requested_at) "
                                           "AND NOT contains(#chunks, :id) AND #expires_at >= :now",
                       ExpressionAttributeNames={f"#{n}": n for n in ("total", "chunks", "expires_at", "tenant",
                                                                       "cancel_requested_at")},
                       ExpressionAttributeValues={":n": jobs, ":chunk": {chunk}, ":id": chunk, ":tenant": tenant,
                                                  ":now": now, ":expires": now + self._retention_s}) is not None:
            return
        item = self._table.get_item(Key=batch_key(batch_id), ConsistentRead=True).get("Item")
        batch = self._live(item)
        if batch is None or batch.tenant != tenant:
            raise NotFound("no such batch", code="batch_not_found")
        if chunk in (item or {}).get("chunks", set()):
            return  # a keyed retry: its jobs were counted by the first try
        raise Conflict("the batch was cancelled: it takes no more jobs", code="batch_cancelled")

    def remove_jobs(self, *, batch_id: str, chunk: str, jobs: int) -> None:
        """Take back a chunk's count: its jobs could not be sent or stored (nothing of them was submitted)."""
        conditional(self._table.update_item, Key=batch_key(batch_id),
                    UpdateExpression="ADD #total :n DELETE #chunks :chunk",
                    ConditionExpression="contains(#chunks, :id)",
                    ExpressionAttributeNames={"#total": "total", "#chunks": "chunks"},
                    ExpressionAttributeValues={":n": -jobs, ":chunk": {chunk}, ":id": chunk})

    def job_started(self, job: Job) -> None:
        """A batch job's first claim (its attempt 1): a retry's claims are not counted again."""
        self._add(job, {"started": 1})

    def job_ended(self, job: Job, status: JobStatus, *, usage: Usage | None, cost_usd: Decimal | None) -> None:
        """A batch job's end, with what the job used and cost in all (``job`` as it was before: its attempt says
        whether it ever started)."""
        counters: dict[str, Any] = {"ended": 1, status.value: 1, **_spend(usage, cost_usd)}
        if job.attempt == 0:
            counters["ended_unstarted"] = 1
        self._add(job, counters, last_ended_at=self._now())

    def run_kept(self, job: Job, *, usage: Usage, cost_usd: Decimal) -> None:
        """What a cancelled job's stopped run used and cost, beyond what its job had when it was cancelled."""
        before = job.usage or Usage()
        self._add(job, _spend(Usage(input_tokens=usage.input_tokens - before.input_tokens,
                                    output_tokens=usage.output_tokens - before.output_tokens),
                              cost_usd - (job.cost_usd or Decimal(0))))

    def _add(self, job: Job, counters: dict[str, Any], **fields: Any) -> None:
        """Add to the batch's counters (a group commit: the counts of the batch's other jobs that arrive while one of
        its writes is under way wait for it to land, and go in one write together)."""
        # Called once the job's own conditional write won: a failure here loses this count (logged), never the job.
        if job.batch_id is None or not counters:
            return
        with self._lock:
            counts = self._open.get(job.batch_id)
            first = counts is None
            if counts is None:
                counts = self._open[job.batch_id] = _Counts()
            add_counters(counts.counters, counters)
            counts.fields |= fields
            counts.job_ids.append(job.id)
        if not first:
            counts.written.wait()  # counted by the write of the first of them
            return
        with self._writing[hash(job.batch_id) % len(self._writing)]:  # the batch's write before this one lands
            with self._lock:
                del self._open[job.batch_id]  # what arrives from here on waits for the next write
            try:
                conditional(self._table.update_item, Key=batch_key(job.batch_id), **update_request(
                    add=counts.counters, set={"expires_at": self._now() + self._retention_s, **counts.fields},
                    condition="attribute_exists(pk)"))
            except Exception:
                logger.exception("batch counters not updated", extra={"job_ids": counts.job_ids,
                                                                      "batch_id": job.batch_id})
                count("BatchCountsLost", len(counts.job_ids))
            finally:
                counts.written.set()

    def request_cancel(self, batch_id: str) -> None:
        now = self._now()
        self._table.update_item(Key=batch_key(batch_id),
                                UpdateExpression="SET #at = if_not_exists(#at, :now)",
                                ExpressionAttributeNames={"#at": "cancel_requested_at"},
                                ExpressionAttributeValues={":now": now})

    def keep_cancel_cursor(self, batch_id: str, cursor: str | None) -> None:
        """Where the next cancel call resumes (None: from the newest job)."""
        self._table.update_item(Key=batch_key(batch_id), **(
            update_request(set={"cancel_cursor": cursor}) if cursor else update_request(remove=["cancel_cursor"])))


def _cursor(position: str) -> str:
    return base64.urlsafe_b64encode(position.encode()).decode()


def _position(cursor: str) -> str:
    try:
        position = base64.urlsafe_b64decode(cursor.encode()).decode()
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        position = ""
    if not RESULT_POSITION.fullmatch(position):
        raise InvalidRequest("cursor is not valid", code="invalid_cursor")
    return position


def _spend(usage: Usage | None, cost_usd: Decimal | None) -> dict[str, Any]:
    spend: dict[str, Any] = {}
    if usage is not None:
        spend |= {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
    if cost_usd:
        spend["cost_usd"] = cost_usd
    return {name: value for name, value in spend.items() if value}


@dataclass(frozen=True)
class BatchService:
    """Submits chunks into a batch through the one submit path (JobService), reads and cancels batches."""

    store: BatchStore
    jobs: JobService
    clock: Clock = system_clock
    # A job is listed among its batch's results once it ended this long ago: by then its index entry is written and
    # readable (DynamoDB's indexes are eventually consistent), so a reader's cursor never passes a result unseen.
    results_settle_s: int = 5

    def submit(self, *, tenant: str, items: list[dict[str, Any]], batch_id: str | None,
               key: RequestKey | None) -> tuple[str, list[Job | AijobsError]]:
        """Submit a chunk of jobs into ``batch_id``, or into a new batch: the batch's id and each item's result.

        A keyed request's new batch id is reserved by its key, so a retry whose first try died names it again.
        """
        if batch_id is None:
            batch_id = new_batch_id()
            if key is not None:
                [batch_id] = self.jobs.store.reserve_job_ids(
                    RequestKey(name=f"{key.name}#batch", body_hash=key.body_hash), [batch_id],
                    expires_at=int(self.clock()) + self.jobs.request_key_ttl_s)
            self.store.create(tenant=tenant, batch_id=batch_id)
        elif self.store.get_tenant_batch(tenant=tenant, batch_id=batch_id).cancel_requested_at is not None:
            raise Conflict("the batch was cancelled: it takes no more jobs", code="batch_cancelled")
        return batch_id, self.jobs.submit_jobs(tenant=tenant, items=items, key=key, batch_id=batch_id)

    def get(self, *, tenant: str, batch_id: str) -> Batch:
        return self.store.get_tenant_batch(tenant=tenant, batch_id=batch_id)

    def list_batches(self, *, tenant: str, limit: int, cursor: str | None) -> Page[Batch]:
        return self.store.list_batches(tenant=tenant, limit=limit, cursor=cursor)

    def results(self, *, tenant: str, batch_id: str, limit: int, cursor: str | None) -> Page[Job]:
        """The batch's ended jobs in the order they ended, those that ended at least ``results_settle_s`` ago; the
        cursor resumes after the last one given. Its ``next_cursor`` is None only once the batch has ended and every
        result was given: until then, calling again with it gives the results that ended since, never one twice."""
        batch = self.store.get_tenant_batch(tenant=tenant, batch_id=batch_id)
        after = _position(cursor) if cursor else None
        ended_by = int(self.clock()) - self.results_settle_s
        jobs, last, more = self.jobs.store.batch_results(tenant=tenant, batch_id=batch_id, after=after,
                                                         ended_by=ended_by, limit=limit)
        if not more and batch.status in ("completed", "cancelled") and (batch.last_ended_at or 0) <= ended_by:
            return Page(jobs, None)
        return Page(jobs, _cursor(last or after or f"{BATCH_RESULTS}{0:010d}{BATCH_RESULTS}"))

    def results_cursor(self) -> str:
        """A cursor after the results that have ended by now: from it, the results that end later."""
        return _cursor(f"{BATCH_RESULTS}{int(self.clock()) - self.results_settle_s:010d}{BATCH_RESULTS}")

    def cancel(self, *, tenant: str, batch_id: str) -> Batch:
        """Cancel every job of the batch that has not ended, each through the one cancel path (``cancel_job``).

        Bounded work: pages of the batch's unended jobs for at most CANCEL_BUDGET_S; past it, the batch answers
        ``cancelling`` and the next call resumes where this one stopped. Once the pages reach the end with jobs
        still unended by the counters (a chunk that raced the cancel), the next call starts again from the newest.
        """
        batch = self.store.get_tenant_batch(tenant=tenant, batch_id=batch_id, consistent=True)
        if batch.status == "cancelled":
            return batch
        self.store.request_cancel(batch_id)  # from now on no chunk is added
        deadline = self.clock() + CANCEL_BUDGET_S
        cursor = batch.cancel_cursor
        while True:
            page = self.jobs.store.unended_batch_jobs(tenant=tenant, batch_id=batch_id, limit=CANCEL_PAGE,
                                                      cursor=cursor)
            self._cancel_jobs(tenant, (job.id for job in page.items))
            cursor = page.next_cursor
            if cursor is None or self.clock() >= deadline:
                break
        self.store.keep_cancel_cursor(batch_id, cursor)
        batch = self.store.get_tenant_batch(tenant=tenant, batch_id=batch_id, consistent=True)
        logger.info("batch cancel", extra={"batch_id": batch_id, "status": batch.status})
        return batch

    def _cancel_jobs(self, tenant: str, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            # It ended meanwhile (job_finished), kept changing (the next call sees it again), or expired.
            with contextlib.suppress(Conflict, NotFound):
                self.jobs.cancel_job(tenant=tenant, job_id=job_id)
