"""DynamoDB data access: the single jobs table. SDK errors become domain outcomes here."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from aijobs.errors import Conflict, InvalidRequest, NotFound
from aijobs.ids import hash_api_key
from aijobs.models import Job, JobError, JobStatus, Usage
from aijobs.webhooks.store import WebhookStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource

_TENANT_INDEX = "gsi1"
# Outputs over this many bytes go to the results bucket; the item keeps their key.
INLINE_OUTPUT_BYTES = 100_000
_SCHEDULE_INDEX = "gsi2"  # a tenant's jobs of one schedule, sparse: only scheduled jobs carry its keys
# attribute names that are DynamoDB reserved words, by the alias the expressions use
_RESERVED = {"#s": "status", "#e": "error", "#u": "usage"}


def _now() -> int:
    return int(time.time())


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response["Error"]["Code"] == "ConditionalCheckFailedException"


def _job_key(job_id: str) -> dict[str, str]:
    return {"pk": f"JOB#{job_id}", "sk": "JOB"}


def _to_item(job: Job) -> dict[str, Any]:
    # JSON round trip: floats become Decimals (what DynamoDB takes) and None fields are dropped.
    data: dict[str, Any] = json.loads(job.model_dump_json(exclude_none=True), parse_float=Decimal)
    item = {**_job_key(job.id), "gsi1pk": f"TENANT#{job.tenant}", "gsi1sk": job.id, **data}
    if job.schedule_id is not None:
        item |= {"gsi2pk": _schedule_jobs_partition(job.tenant, job.schedule_id), "gsi2sk": job.id}
    return item


def _schedule_jobs_partition(tenant: str, schedule_id: str) -> str:
    return f"TENANT#{tenant}#SCHEDULE#{schedule_id}"


def _encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def _decode_cursor(cursor: str, index: str = _TENANT_INDEX, partition: str | None = None) -> dict[str, Any]:
    """The start key a cursor holds, checked to belong to the index (and partition) being read."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except ValueError:
        raise InvalidRequest("cursor is not valid", code="invalid_cursor") from None
    if not isinstance(key, dict) or set(key) != {"pk", "sk", f"{index}pk", f"{index}sk"}:
        raise InvalidRequest("cursor is not valid", code="invalid_cursor")
    if partition is not None and key[f"{index}pk"] != partition:
        raise InvalidRequest("cursor is not valid", code="invalid_cursor")
    return key


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
    """Jobs and API keys in the single table."""

    def __init__(self, *, table_name: str, resource: DynamoDBServiceResource, retention_s: int,
                 blobs: OutputBlobs | None = None) -> None:
        self._resource = resource
        self._table = resource.Table(table_name)
        self._retention_s = retention_s
        self._blobs = blobs

    # --- jobs -------------------------------------------------------------------------------------

    def put_new_job(self, job: Job) -> None:
        """Store a job that must not exist yet; ``Conflict`` (``job_exists``) if its id is taken."""
        try:
            self._table.put_item(Item=_to_item(job), ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise Conflict("a job with this id exists", code="job_exists") from None
            raise

    def put_new_jobs(self, jobs: list[Job]) -> None:
        with self._table.batch_writer() as batch:  # retries unprocessed items itself
            for job in jobs:
                batch.put_item(Item=_to_item(job))

    def delete_jobs(self, job_ids: list[str]) -> None:
        with self._table.batch_writer() as batch:
            for job_id in job_ids:
                batch.delete_item(Key=_job_key(job_id))

    def get_job(self, job_id: str, *, consistent: bool = False) -> Job | None:
        item = self._table.get_item(Key=_job_key(job_id), ConsistentRead=consistent).get("Item")
        return self._live(item)

    def get_tenant_job(self, *, tenant: str, job_id: str, consistent: bool = False) -> Job:
        """The tenant's job; another tenant's job does not exist for this one (404, never 403)."""
        job = self.get_job(job_id, consistent=consistent) if job_id.startswith("job_") else None
        if job is None or job.tenant != tenant:
            raise NotFound("no such job", code="job_not_found")
        return job

    def get_jobs(self, job_ids: list[str]) -> dict[str, Job]:
        found: dict[str, Job] = {}
        pending = [_job_key(job_id) for job_id in dict.fromkeys(job_ids)]
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
                  cursor: str | None, schedule_id: str | None = None) -> tuple[list[Job], str | None]:
        """A tenant's jobs (or those of one of its schedules), newest first; a status filter reads on to fill pages."""
        jobs: list[Job] = []
        index, partition = ((_SCHEDULE_INDEX, _schedule_jobs_partition(tenant, schedule_id)) if schedule_id
                            else (_TENANT_INDEX, f"TENANT#{tenant}"))
        start = _decode_cursor(cursor, index, partition) if cursor else None
        while True:
            query: dict[str, Any] = {
                "IndexName": index,
                "KeyConditionExpression": Key(f"{index}pk").eq(partition),
                "ScanIndexForward": False,
                "Limit": limit - len(jobs),
            }
            if status is not None:
                query["FilterExpression"] = Attr("status").eq(status.value)
            if start:
                query["ExclusiveStartKey"] = start
            answer = self._table.query(**query)
            jobs += [job for item in answer["Items"] if (job := self._live(item))]
            start = answer.get("LastEvaluatedKey")
            if not start or len(jobs) >= limit:
                return jobs, _encode_cursor(start) if start else None

    def claim_job(self, job_id: str, *, lease_s: int) -> Job | None:
        """Move a queued job (or one whose worker's lease ran out) to in_progress; None if not claimable."""
        now = _now()
        try:
            answer = self._table.update_item(
                Key=_job_key(job_id),
                UpdateExpression="SET #s = :running, started_at = :now, lease_until = :lease "
                                 "ADD attempt :one",
                ConditionExpression="attribute_exists(pk) AND (#s = :queued OR (#s = :running "
                                    "AND lease_until < :now))",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":running": JobStatus.in_progress.value,
                                           ":queued": JobStatus.queued.value,
                                           ":now": now, ":lease": now + lease_s, ":one": 1},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return None
            raise
        return Job.model_validate(answer["Attributes"])

    def complete_job(self, job: Job, *, output_text: str, usage: Usage, cost_usd: Decimal | None) -> bool:
        values: dict[str, Any] = {":usage": usage.model_dump(), ":cost": cost_usd}
        if self._blobs is not None and len(output_text.encode()) > INLINE_OUTPUT_BYTES:
            values[":key"] = key = f"outputs/{job.id}/{job.attempt}"
            self._blobs.put(key, output_text)
            output, stale = "output_key = :key", "output_text"
        else:
            values[":text"] = output_text
            output, stale = "output_text = :text", "output_key"
        return self._finish(job, JobStatus.completed, f"{output}, #u = :usage, cost_usd = :cost", values,
                            remove=("#e", stale))  # a success clears the error of an earlier attempt

    def fail_job(self, job: Job, error: JobError) -> bool:
        return self._finish(job, JobStatus.failed, "#e = :error", {":error": error.model_dump()})

    def requeue_job(self, job: Job, error: JobError) -> bool:
        """Hand an in_progress job back to the queue after a retryable failure."""
        return self._transition(job, "SET #s = :status, #e = :error REMOVE lease_until",
                                {":status": JobStatus.queued.value, ":error": error.model_dump()})

    def _finish(self, job: Job, status: JobStatus, update: str, values: dict[str, Any],
                remove: tuple[str, ...] = ()) -> bool:
        now = _now()
        return self._transition(
            job,
            f"SET #s = :status, completed_at = :now, expires_at = :expires, {update} "
            f"REMOVE {', '.join(('lease_until', *remove))}",
            {":status": status.value, ":now": now, ":expires": now + self._retention_s, **values},
        )

    def _transition(self, job: Job, update: str, values: dict[str, Any]) -> bool:
        # Only the worker holding this attempt's claim may move the job on.
        try:
            self._table.update_item(
                Key=_job_key(job.id),
                UpdateExpression=update,
                ConditionExpression="#s = :running AND attempt = :attempt",
                ExpressionAttributeNames={alias: name for alias, name in _RESERVED.items() if alias in update},
                ExpressionAttributeValues={":running": JobStatus.in_progress.value,
                                           ":attempt": job.attempt, **values},
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def _live(self, item: dict[str, Any] | None) -> Job | None:
        # TTL deletes lazily: an expired item that is still there is treated as gone.
        if not item or ("expires_at" in item and int(item["expires_at"]) < _now()):
            return None
        job = Job.model_validate(item)
        if job.output_key and self._blobs is not None:  # read back transparently
            job.output_text = self._blobs.get(job.output_key)
        return job

    # --- API keys ---------------------------------------------------------------------------------

    def put_api_key(self, *, key: str, tenant: str) -> None:
        """Store a key (its hash); a tenant's first key creates the tenant, with its first webhook signing secret."""
        WebhookStore(table=self._table).create_tenant(tenant)
        self._table.put_item(Item={"pk": f"KEY#{hash_api_key(key)}", "sk": "KEY", "tenant": tenant,
                                   "created_at": _now()})

    def tenant_for_key(self, key: str) -> str | None:
        item = self._table.get_item(Key={"pk": f"KEY#{hash_api_key(key)}", "sk": "KEY"}).get("Item")
        return str(item["tenant"]) if item else None
