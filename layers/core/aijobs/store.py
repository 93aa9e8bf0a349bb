"""The job item's one writer: jobs in the single table (dynamo.py), their large outputs in S3.

Every change of a job is a conditional write here: state transitions hold the claim of the attempt, and the
marks of the final event's webhook hold the terminal state they were made for.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Attr

from aijobs.clock import Clock, system_clock
from aijobs.dynamo import (
    SCHEDULE_INDEX,
    TENANT_INDEX,
    Page,
    conditional,
    job_key,
    query_index,
    schedule_jobs_partition,
    tenant_partition,
    to_attributes,
    update_request,
)
from aijobs.errors import Conflict, NotFound
from aijobs.ids import new_webhook_id
from aijobs.models.common import ErrorDetail
from aijobs.models.jobs import Job, JobStatus, Usage
from aijobs.models.webhooks import FinalEvent

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource

# Outputs over this many bytes go to the results bucket; the item keeps their key.
INLINE_OUTPUT_BYTES = 100_000


def _to_item(job: Job) -> dict[str, Any]:
    item = {**job_key(job.id), "gsi1pk": tenant_partition(job.tenant), "gsi1sk": job.id, **to_attributes(job)}
    if job.schedule_id is not None:
        item |= {"gsi2pk": schedule_jobs_partition(job.tenant, job.schedule_id), "gsi2sk": job.id}
    return item


class OutputBlobs:
    """Outputs too large for a job item (DynamoDB items stop at 400 KB), in the results bucket."""

    def __init__(self, *, bucket: str, client_factory: Callable[[], Any]) -> None:
        self._bucket = bucket
        self._client_factory = client_factory

    @cached_property
    def _client(self) -> Any:  # made on first use: most jobs never need it
        return self._client_factory()

    def put(self, key: str, text: str) -> None:
        self._client.put_object(Bucket=self._bucket, Key=key, Body=text.encode(),
                                ContentType="text/plain; charset=utf-8")

    def get(self, key: str) -> str:
        return str(self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read().decode())


class JobStore:
    def __init__(self, *, table_name: str, resource: DynamoDBServiceResource, retention_s: int,
                 blobs: OutputBlobs | None = None, clock: Clock = system_clock) -> None:
        self._resource = resource
        self._table = resource.Table(table_name)
        self._retention_s = retention_s
        self._blobs = blobs
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock())

    # --- create and remove ------------------------------------------------------------------------

    def put_new_job(self, job: Job) -> None:
        """Store a job that must not exist yet; ``Conflict`` (``job_exists``) if its id is taken."""
        stored = conditional(self._table.put_item, Item=_to_item(job), ConditionExpression="attribute_not_exists(pk)")
        if stored is None:
            raise Conflict("a job with this id exists", code="job_exists")

    def put_new_jobs(self, jobs: list[Job]) -> None:
        with self._table.batch_writer() as batch:  # retries unprocessed items itself
            for job in jobs:
                batch.put_item(Item=_to_item(job))

    def delete_jobs(self, job_ids: list[str]) -> None:
        with self._table.batch_writer() as batch:
            for job_id in job_ids:
                batch.delete_item(Key=job_key(job_id))

    # --- reads ------------------------------------------------------------------------------------

    def get_job(self, job_id: str, *, consistent: bool = False) -> Job | None:
        item = self._table.get_item(Key=job_key(job_id), ConsistentRead=consistent).get("Item")
        return self._live(item)

    def get_tenant_job(self, *, tenant: str, job_id: str, consistent: bool = False) -> Job:
        """The tenant's job; another tenant's job does not exist for this one (404, never 403)."""
        job = self.get_job(job_id, consistent=consistent) if job_id.startswith("job_") else None
        if job is None or job.tenant != tenant:
            raise NotFound("no such job", code="job_not_found")
        return job

    def get_jobs(self, job_ids: list[str]) -> dict[str, Job]:
        found: dict[str, Job] = {}
        pending = [job_key(job_id) for job_id in dict.fromkeys(job_ids)]
        while pending:
            chunk, pending = pending[:100], pending[100:]
            request: dict[str, Any] = {self._table.name: {"Keys": chunk}}
            while request:
                answer = self._resource.batch_get_item(RequestItems=request)
                for item in answer["Responses"].get(self._table.name, []):
                    if job := self._live(item):
                        found[job.id] = job
                request = answer.get("UnprocessedKeys") or {}
        return found

    def list_jobs(self, *, tenant: str, status: JobStatus | None, limit: int,
                  cursor: str | None, schedule_id: str | None = None) -> Page[Job]:
        """A tenant's jobs (or those of one of its schedules), newest first; a status filter reads on to fill pages."""
        index, partition = ((SCHEDULE_INDEX, schedule_jobs_partition(tenant, schedule_id)) if schedule_id
                            else (TENANT_INDEX, tenant_partition(tenant)))
        page = query_index(self._table, index=index, partition=partition, limit=limit, cursor=cursor,
                           filter=Attr("status").eq(status.value) if status is not None else None)
        return Page([job for item in page.items if (job := self._live(item))], page.next_cursor)

    def _live(self, item: dict[str, Any] | None) -> Job | None:
        # TTL deletes lazily: an expired item that is still there is treated as gone.
        if not item or ("expires_at" in item and int(item["expires_at"]) < self._now()):
            return None
        job = Job.model_validate(item)
        if job.output_key and self._blobs is not None:  # read back transparently
            job.output_text = self._blobs.get(job.output_key)
        return job

    # --- the run: claim, then one outcome ---------------------------------------------------------

    def claim_job(self, job_id: str, *, lease_s: int) -> Job | None:
        """Move a queued job (or one whose worker's lease ran out) to in_progress; None if not claimable."""
        now = self._now()
        answer = conditional(
            self._table.update_item, Key=job_key(job_id), ReturnValues="ALL_NEW",
                **update_request(set={"status": JobStatus.in_progress.value, "started_at": now,
                                      "lease_until": now + lease_s}, add={"attempt": 1},
                                 condition="attribute_exists(pk) AND (#status = :queued OR (#status = :running "
                                           "AND #lease_until < :now))",
                                 values={":queued": JobStatus.queued.value, ":running": JobStatus.in_progress.value,
                                     ":now": now}))
        return Job.model_validate(answer["Attributes"]) if answer else None

    def complete_job(self, job: Job, *, output_text: str, usage: Usage, cost_usd: Decimal | None) -> bool:
        output: dict[str, Any]
        if self._blobs is not None and len(output_text.encode()) > INLINE_OUTPUT_BYTES:
            key = f"outputs/{job.id}/{job.attempt}"
            self._blobs.put(key, output_text)
            output, stale = {"output_key": key}, "output_text"
        else:
            output, stale = {"output_text": output_text}, "output_key"
        # A success clears the error of an earlier attempt.
        return self._finish(job, JobStatus.completed, {**output, "usage": usage, "cost_usd": cost_usd},
                            remove=("error", stale))

    def fail_job(self, job: Job, error: ErrorDetail) -> bool:
        return self._finish(job, JobStatus.failed, {"error": error})

    def requeue_job(self, job: Job, error: ErrorDetail) -> bool:
        """Hand an in_progress job back to the queue after a retryable failure."""
        return self._transition(job, set={"status": JobStatus.queued.value, "error": error}, remove=("lease_until",))

    def _finish(self, job: Job, status: JobStatus, fields: dict[str, Any], remove: tuple[str, ...] = ()) -> bool:
        now = self._now()
        return self._transition(job, set={"status": status.value, "completed_at": now,
                                          "expires_at": now + self._retention_s, **fields},
                                remove=("lease_until", *remove))

    def _transition(self, job: Job, *, set: dict[str, Any], remove: tuple[str, ...]) -> bool:
        # Only the worker holding this attempt's claim may move the job on.
        return conditional(self._table.update_item, Key=job_key(job.id),
                           **update_request(set={k: v for k, v in set.items() if v is not None}, remove=remove,
                                            condition="#status = :running AND #attempt = :attempt",
                                            values={":running": JobStatus.in_progress.value,
                                                    ":attempt": job.attempt})) is not None

    # --- the final event's webhook ----------------------------------------------------------------

    def mark_final_event(self, job: Job) -> FinalEvent | None:
        """The webhook event of the job's current terminal state: made once per terminal state, with a
        conditional write, so concurrent callers agree on its id. None when the job has moved on (it is no
        longer in the state that was read)."""
        instance = job.terminal_instance
        if job.webhook_event_for == instance and job.webhook_event_id:
            return FinalEvent(webhook_id=job.webhook_event_id, enqueued=job.webhook_enqueued)
        webhook_id = new_webhook_id()
        same_state = "#status = :status AND #attempt = :attempt AND " + (
            "#completed_at = :completed" if job.completed_at is not None else "attribute_not_exists(#completed_at)")
        values: dict[str, Any] = {":status": job.status.value, ":attempt": job.attempt, ":for": instance}
        if job.completed_at is not None:
            values[":completed"] = job.completed_at
        if conditional(self._table.update_item, Key=job_key(job.id), **update_request(
                set={"webhook_event_id": webhook_id, "webhook_event_for": instance, "webhook_enqueued": False},
                condition=f"{same_state} AND (attribute_not_exists(#webhook_event_for) OR #webhook_event_for <> :for)",
                values=values)) is not None:
            return FinalEvent(webhook_id=webhook_id, enqueued=False)
        item = self._table.get_item(Key=job_key(job.id), ConsistentRead=True).get("Item") or {}
        if item.get("webhook_event_for") == instance:  # another caller made it first
            return FinalEvent(webhook_id=str(item["webhook_event_id"]), enqueued=bool(item.get("webhook_enqueued")))
        return None

    def mark_webhook_enqueued(self, job_id: str, webhook_id: str) -> None:
        # The condition fails only when the job moved on to another event: then there is nothing to mark.
        conditional(self._table.update_item, Key=job_key(job_id),
                    **update_request(set={"webhook_enqueued": True}, condition="#webhook_event_id = :id",
                                     values={":id": webhook_id}))
