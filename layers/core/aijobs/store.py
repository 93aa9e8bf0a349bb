"""The job item's one writer: jobs in the single table (dynamo.py), their large outputs in S3.

Every change of a job is a conditional write here: state transitions hold the claim of the attempt, and the
marks of the final event's webhook hold the terminal state they were made for.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from boto3.dynamodb.conditions import Attr
from boto3.dynamodb.conditions import Key as KeyCondition
from botocore.exceptions import ClientError
from pydantic import ValidationError

from aijobs.clock import Clock, system_clock
from aijobs.dynamo import (
    BATCH_RESULTS,
    SCHEDULE_INDEX,
    SWEEP_INDEX,
    SWEEP_KEYS,
    SWEEP_SHARDS,
    TENANT_INDEX,
    Key,
    Page,
    batch_jobs_partition,
    batch_result_key,
    conditional,
    from_low_level,
    get_items,
    is_condition_failure,
    job_key,
    output_chunk_key,
    output_log_partition,
    projection,
    query_index,
    request_key,
    schedule_jobs_partition,
    sweep_keys,
    sweep_partition,
    tenant_partition,
    to_attributes,
    update_request,
)
from aijobs.errors import Conflict, IdempotencyConflict, NotFound
from aijobs.ids import job_id_range, new_webhook_id
from aijobs.models.common import ErrorDetail
from aijobs.models.jobs import (
    FileLink,
    Job,
    JobKind,
    JobRequest,
    JobStatus,
    Priority,
    Progress,
    Reservation,
    StatusDetails,
    Usage,
)
from aijobs.models.webhooks import FinalEvent
from aijobs.pricing import Price

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource

    from aijobs.batches import BatchStore
    from aijobs.idempotency import RequestKey

# Outputs over this many bytes go to the results bucket; the item keeps their key.
INLINE_OUTPUT_BYTES = 100_000
UNREADABLE = ErrorDetail(type="internal", code="job_unreadable", retryable=False,
                         message="the job was stored in a form this version of aijobs cannot read")


@dataclass(frozen=True)
class JobFilters:
    """What a list of jobs is narrowed to, besides a status (GET /v1/jobs)."""

    model: str | None = None
    kind: JobKind | None = None
    created_from: int | None = None  # unix seconds, inclusive
    created_before: int | None = None  # exclusive

    def id_range(self) -> tuple[str, str] | None:
        if self.created_from is None and self.created_before is None:
            return None
        return job_id_range(self.created_from, self.created_before)


@dataclass(frozen=True)
class Claim:
    """A claim's result: the job when it was claimed, else the job as it is (None: there is no such job)."""

    job: Job | None
    current: Job | None


def _text(value: Any) -> str | None:
    return str(value) if value else None


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(_number(value))


def _priority(request: Any) -> Priority:
    """A stored request's lane; a job stored before lanes existed (or unreadable) is in the normal one."""
    value = request.get("priority") if isinstance(request, dict) else None
    return value if value in ("high", "low") else "normal"


class JobState(NamedTuple):
    tenant: str
    status: JobStatus
    attempt: int = 0
    created_at: int = 0
    expires_at: int | None = None
    lease_until: int | None = None
    priority: Priority = "normal"  # its lane (a parked job released is sent to it)
    watched_at: int | None = None  # when someone last looked at it running (Job.watched_at)


def read_job(item: dict[str, Any]) -> Job:
    """A stored job; one this version cannot read (written by an older or newer one) reads as failed with
    ``job_unreadable``, with what can be read of it, so that it is a typed error and never a crash."""
    if "content_deleted_at" in item and isinstance(item.get("request"), dict):
        # Its input is gone (an empty input is not a request one could make): the rest of the request is as sent.
        request = JobRequest.model_validate({**item["request"], "input": "-"}).model_copy(update={"input": ""})
        item = {**item, "request": request}
    try:
        return Job.model_validate(item)
    except ValidationError:
        # Its final event still goes out: the callback and the webhook marks are kept when they can be read.
        raw = item.get("request")
        callback = raw.get("callback_url") if isinstance(raw, dict) else None
        return Job.model_construct(
            id=str(item.get("id") or str(item.get("pk", "")).removeprefix("JOB#")), tenant=str(item.get("tenant", "")),
            status=JobStatus.failed, model=str(item.get("model") or "unknown"),
            request=JobRequest.model_construct(input="", callback_url=callback if isinstance(callback, str) else None),
            created_at=int(_number(item.get("created_at"))), attempt=int(_number(item.get("attempt"))),
            completed_at=int(_number(item["completed_at"])) if "completed_at" in item else None,
            expires_at=int(_number(item["expires_at"])) if "expires_at" in item else None, error=UNREADABLE,
            webhook_enqueued=item.get("webhook_enqueued") is True, webhook_event_id=_text(item.get("webhook_event_id")),
            webhook_event_for=_text(item.get("webhook_event_for")))


@dataclass(frozen=True, eq=False)
class OutputPiece:
    """Piece ``seq`` of a running attempt's output, to write to its job's output log with how far the call had got
    then (compared by identity: each is written once)."""

    job_id: str
    attempt: int
    seq: int
    text: str
    progress: Progress
    timeout_s: int  # the job's: its piece outlives it


class OutputChunk(NamedTuple):
    text: str
    progress: Progress


@dataclass(frozen=True)
class RunRecord:
    """What an ended model call leaves on its job besides the output: its time, and how far its output log goes."""

    duration_ms: int
    output_seq: int
    output_logged_chars: int
    provider_model: str | None = None  # the model that answered, and why it stopped (a call that ended)
    finish_reason: str | None = None
    backend: str | None = None  # which model backend answered (aijobs/backends.py)
    output_files: tuple[str, ...] = ()  # an embedding or image job's files, and the vectors' length
    output_dimensions: int | None = None


@dataclass(frozen=True)
class Spent:
    """What a job's attempts so far used and cost, and how many made an output that did not match its format."""

    usage: Usage
    price: Price
    invalid_outputs: int

    def fields(self) -> dict[str, Any]:
        return {"usage": self.usage, **_price_fields(self.price), "invalid_outputs": self.invalid_outputs}


def _price_fields(price: Price) -> dict[str, Any]:
    return {"cost_usd": price.cost_usd, "price_known": price.known}


def _run_fields(run: RunRecord | None) -> dict[str, Any]:
    if run is None:
        return {}
    fields = {"duration_ms": run.duration_ms, "output_seq": run.output_seq,
              "output_logged_chars": run.output_logged_chars,
              "provider_model": run.provider_model, "finish_reason": run.finish_reason, "backend": run.backend,
              "output_files": list(run.output_files) or None, "output_dimensions": run.output_dimensions}
    return {name: value for name, value in fields.items() if value is not None}


# A look at a running job (GET /v1/jobs/{id}, a stream of it) keeps its worker flushing its output for this long;
# readers renew it once it is WATCH_RENEW_S old (a poller every few seconds costs a write every WATCH_RENEW_S).
WATCHED_FOR_S = 30
WATCH_RENEW_S = 10
_STATE_FIELDS = ("id", "tenant", "status", "attempt", "expires_at", "created_at", "lease_until", "request.priority",
                 "watched_at")


def _job_keys(job_ids: list[str]) -> list[Key]:
    return [job_key(job_id) for job_id in dict.fromkeys(job_ids)]


def job_item(job: Job) -> dict[str, Any]:
    """The item a job is stored as: its attributes and the keys of the indexes it is in."""
    item = {**job_key(job.id), "gsi1pk": tenant_partition(job.tenant), "gsi1sk": job.id, **to_attributes(job)}
    if job.schedule_id is not None:
        item |= {"gsi2pk": schedule_jobs_partition(job.tenant, job.schedule_id), "gsi2sk": job.id}
    elif job.batch_id is not None:  # never both: a schedule's fire makes single jobs
        item |= {"gsi2pk": batch_jobs_partition(job.tenant, job.batch_id), "gsi2sk": job.id}
    if job.status_details is not None:  # deferred: the sweeper sends it when it may start, if nothing has
        item |= sweep_keys(job.id, job.status_details.not_before)
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
        self.put_bytes(key, text.encode(), content_type="text/plain; charset=utf-8")

    def put_bytes(self, key: str, body: bytes, *, content_type: str) -> None:
        self._client.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType=content_type)

    def link(self, key: str, *, ttl_s: int, now: float) -> FileLink:
        """A presigned URL that reads the object for ``ttl_s`` (signed here, with no request: by the credentials
        of the function that signs, which must be allowed to read it)."""
        url = self._client.generate_presigned_url("get_object", Params={"Bucket": self._bucket, "Key": key},
                                                  ExpiresIn=ttl_s)
        return FileLink(url=str(url), expires_at=int(now) + ttl_s)

    def get(self, key: str) -> str:
        return str(self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read().decode())

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self._bucket, Key=key)


def owned(job: Job | None, tenant: str) -> Job:
    """The job when it is the tenant's; another tenant's job does not exist for this one (404, never 403)."""
    if job is None or job.tenant != tenant:
        raise NotFound("no such job", code="job_not_found")
    return job


def has_callback(job: Job) -> bool:
    """Whether the job names its own webhook receiver (``callback_url``)."""
    return bool(job.request.callback_url)


class JobStore:
    def __init__(self, *, table_name: str, resource: DynamoDBServiceResource, retention_s: int,
                 blobs: OutputBlobs | None = None, clock: Clock = system_clock, sweep_grace_s: int = 60,
                 has_webhook_destinations: Callable[[Job], bool] = has_callback,
                 batches: BatchStore | None = None) -> None:
        self._table = resource.Table(table_name)
        self._retention_s = retention_s
        self._blobs = blobs
        self._clock = clock
        self._grace_s = sweep_grace_s  # how long past its due a job may be before the sweeper repairs it
        # Whether a job's final event may have somewhere to go (its callback_url, or its tenant's webhook endpoints:
        # WebhookOutbox.has_destinations): such a job stays in the sweep index until its webhook is queued.
        self._has_webhook_destinations = has_webhook_destinations
        self._batches = batches  # a batch job's counted transitions are added to its batch (batches.py)

    def _now(self) -> int:
        return int(self._clock())

    # --- create and remove ------------------------------------------------------------------------

    def put_new_job(self, job: Job) -> None:
        """Store a job that must not exist yet; ``Conflict`` (``job_exists``) if its id is taken."""
        stored = conditional(self._table.put_item, Item=job_item(job), ConditionExpression="attribute_not_exists(pk)")
        if stored is None:
            raise Conflict("a job with this id exists", code="job_exists")

    def put_new_jobs(self, jobs: list[Job]) -> None:
        with self._table.batch_writer() as batch:  # retries unprocessed items itself
            for job in jobs:
                batch.put_item(Item=job_item(job))

    def reserve_job_ids(self, key: RequestKey, job_ids: list[str], *, expires_at: int) -> list[str]:
        """The job ids of one keyed request: ``job_ids`` the first time, the ids reserved then on a retry.

        A retry whose first try died after sending or storing its jobs (and before its answer was recorded) thus
        names the same jobs. The same key with another body is an ``IdempotencyConflict``.
        """
        now = int(self._clock())
        reserved = conditional(self._table.put_item, Item={
            **request_key(key.name), "job_ids": job_ids, "body_hash": key.body_hash, "expires_at": expires_at},
            ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
            ExpressionAttributeValues={":now": now})
        if reserved is not None:
            return job_ids
        earlier = self._table.get_item(Key=request_key(key.name), ConsistentRead=True).get("Item") or {}
        reserved_ids = [str(job_id) for job_id in cast(list[Any], earlier.get("job_ids") or [])]
        if earlier.get("body_hash") != key.body_hash or len(reserved_ids) != len(job_ids):
            raise IdempotencyConflict("this Idempotency-Key was used with another request body")
        return reserved_ids

    def delete_jobs(self, job_ids: list[str]) -> None:
        with self._table.batch_writer() as batch:
            for job_id in job_ids:
                batch.delete_item(Key=job_key(job_id))

    # --- reads ------------------------------------------------------------------------------------

    def get_job(self, job_id: str, *, consistent: bool = False, with_output: bool = True) -> Job | None:
        """The job, None if there is none (or it has expired); ``with_output=False`` leaves an output kept in S3
        unread (its ``output_text`` is then None), for readers that only need the job's state."""
        item = self._table.get_item(Key=job_key(job_id), ConsistentRead=consistent).get("Item")
        return self._live(item, with_output=with_output)

    def get_tenant_job(self, *, tenant: str, job_id: str, consistent: bool = False) -> Job:
        """The tenant's job; another tenant's job does not exist for this one (404, never 403)."""
        return owned(self.get_job(job_id, consistent=consistent) if job_id.startswith("job_") else None, tenant)

    def get_jobs(self, job_ids: list[str], *, consistent: bool = False) -> dict[str, Job]:
        return {job.id: job for item in self._batch_get(_job_keys(job_ids), consistent=consistent)
                if (job := self._live(item))}

    def get_states(self, job_ids: list[str], *, consistent: bool = False) -> dict[str, JobState]:
        """The tenant and status of each job that exists, read with a projection: a few bytes a job."""
        states = (self._state(item) for item in self._batch_get(_job_keys(job_ids), consistent=consistent,
                                                                fields=_STATE_FIELDS))
        return {job_id: state for job_id, state in states if state is not None}

    def get_state(self, job_id: str, *, consistent: bool = False) -> JobState | None:
        """A job's tenant and status (a projected GetItem: what the worker reads while a model call runs)."""
        return self._state(self._table.get_item(Key=job_key(job_id), ConsistentRead=consistent,
                                                **projection(_STATE_FIELDS)).get("Item"))[1]

    def _state(self, item: dict[str, Any] | None) -> tuple[str, JobState | None]:
        if not item or "id" not in item or ("expires_at" in item and _number(item["expires_at"]) < self._now()):
            return "", None
        return str(item["id"]), JobState(tenant=str(item["tenant"]), status=JobStatus(item["status"]),
                                         attempt=int(_number(item.get("attempt", 0))),
                                         created_at=int(_number(item.get("created_at", 0))),
                                         expires_at=_optional_int(item.get("expires_at")),
                                         lease_until=_optional_int(item.get("lease_until")),
                                         priority=_priority(item.get("request")),
                                         watched_at=_optional_int(item.get("watched_at")))

    def _batch_get(self, keys: list[Key], *, consistent: bool,
                   fields: tuple[str, ...] | None = None) -> Iterator[dict[str, Any]]:
        return iter(get_items(self._table, keys, fields=fields or (), consistent=consistent))

    def list_jobs(self, *, tenant: str, status: JobStatus | None, limit: int, cursor: str | None,
                  schedule_id: str | None = None, batch_id: str | None = None,
                  filters: JobFilters = JobFilters()) -> Page[Job]:
        """A tenant's jobs (or those of one of its schedules, or batches), newest first; a filter reads a bounded
        number of jobs per page (``query_index``), so a filtered page may be short or empty and still have a
        cursor. A time range is read as a range of ids (a batch's ended jobs are not sorted by id: filtered)."""
        conditions: list[Any] = [Attr("status").eq(status.value)] if status is not None else []
        if filters.model is not None:
            conditions.append(Attr("model").eq(filters.model))
        if filters.kind == "text":  # jobs made before kinds have none
            conditions.append(Attr("request.kind").not_exists() | Attr("request.kind").eq("text"))
        elif filters.kind is not None:
            conditions.append(Attr("request.kind").eq(filters.kind))
        ids = filters.id_range()
        if ids is not None and batch_id is not None:
            if filters.created_from is not None:
                conditions.append(Attr("created_at").gte(filters.created_from))
            if filters.created_before is not None:
                conditions.append(Attr("created_at").lt(filters.created_before))
            ids = None
        condition = functools.reduce(operator.and_, conditions) if conditions else None
        return self._list(tenant, limit=limit, cursor=cursor, schedule_id=schedule_id, batch_id=batch_id,
                          filter=condition, sort_range=ids)

    def unended_batch_jobs(self, *, tenant: str, batch_id: str, limit: int, cursor: str | None) -> Page[Job]:
        """A page of a batch's jobs that have not ended (what its cancel cancels), newest first: the index's ended
        ones are not read (their sort keys come after the ids), and the filter drops those that ended since."""
        unended = Attr("status").is_in([JobStatus.queued.value, JobStatus.in_progress.value])
        return self._list(tenant, limit=limit, cursor=cursor, batch_id=batch_id, filter=unended,
                          sort_range=job_id_range(None, None))

    def batch_results(self, *, tenant: str, batch_id: str, after: str | None, ended_by: int,
                      limit: int) -> tuple[list[Job], str | None, bool]:
        """A batch's ended jobs in the order they ended, from just after the sort key ``after`` (None: the first)
        to those that ended at ``ended_by``; with the sort key of the last one read (None: none) and whether more
        are there."""
        lowest = after + "!" if after else BATCH_RESULTS  # "!" sorts before every character of a sort key
        highest = f"{BATCH_RESULTS}{ended_by:010d}{BATCH_RESULTS}"
        if lowest > highest:
            return [], None, False
        answer = self._table.query(
            IndexName=SCHEDULE_INDEX, Limit=limit, ScanIndexForward=True,
            KeyConditionExpression=KeyCondition("gsi2pk").eq(batch_jobs_partition(tenant, batch_id))
            & KeyCondition("gsi2sk").between(lowest, highest))
        items = answer["Items"]
        return ([job for item in items if (job := self._live(item))], str(items[-1]["gsi2sk"]) if items else None,
                "LastEvaluatedKey" in answer)

    def _list(self, tenant: str, *, limit: int, cursor: str | None, filter: Any, schedule_id: str | None = None,
              batch_id: str | None = None, sort_range: tuple[str, str] | None = None) -> Page[Job]:
        index, partition = ((SCHEDULE_INDEX, schedule_jobs_partition(tenant, schedule_id)) if schedule_id
                            else (SCHEDULE_INDEX, batch_jobs_partition(tenant, batch_id)) if batch_id
                            else (TENANT_INDEX, tenant_partition(tenant)))
        page = query_index(self._table, index=index, partition=partition, limit=limit, cursor=cursor, filter=filter,
                           sort_range=sort_range)
        return Page([job for item in page.items if (job := self._live(item))], page.next_cursor)

    def _live(self, item: dict[str, Any] | None, *, with_output: bool = True) -> Job | None:
        # TTL deletes lazily: an expired item that is still there is treated as gone.
        if not item or ("expires_at" in item and _number(item["expires_at"]) < self._now()):
            return None
        job = read_job(item)
        if with_output and job.output_key and self._blobs is not None:  # read back transparently
            job.output_text = self._blobs.get(job.output_key)
        return job

    # --- the run: claim, then one outcome ---------------------------------------------------------

    def claim_job(self, job_id: str, *, lease_s: int) -> Claim:
        """Move a queued job to in_progress under a lease; when it is not queued, or deferred by a limit (it must
        be admitted first: ``admit_deferred``), what it is instead."""
        return self._claim(job_id, lease_s=lease_s,
                           condition="#status = :queued AND attribute_not_exists(#status_details)",
                           values={":queued": JobStatus.queued.value})

    def admit_deferred(self, job: Job, reservation: Reservation | None) -> bool:
        """A deferred job, admitted by its tenant's limits at last: it keeps its reservation and may be claimed."""
        return conditional(self._table.update_item, Key=job_key(job.id), **update_request(
            set={"reservation": reservation} if reservation is not None else {}, remove=("status_details",),
            condition="#status = :queued AND attribute_exists(#status_details)",
            values={":queued": JobStatus.queued.value})) is not None

    def defer(self, job: Job, details: StatusDetails) -> bool:
        """Keep a queued job waiting for its limits (again): why, and until when; the sweeper sends it then."""
        return conditional(self._table.update_item, Key=job_key(job.id), **update_request(
            set={"status_details": details, **sweep_keys(job.id, details.not_before)},
            condition="#status = :queued", values={":queued": JobStatus.queued.value})) is not None

    def take_over(self, job_id: str, *, lease_s: int) -> Claim:
        """Claim an in_progress job whose worker's lease ran out (that worker died)."""
        return self._claim(job_id, lease_s=lease_s, condition="#status = :running AND #lease_until < :now",
                           values={":running": JobStatus.in_progress.value, ":now": self._now()})

    def _claim(self, job_id: str, *, lease_s: int, condition: str, values: dict[str, Any]) -> Claim:
        now = self._now()
        lease_until = now + lease_s
        try:
            answer = self._table.update_item(
                Key=job_key(job_id), ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **update_request(set={"status": JobStatus.in_progress.value, "started_at": now,
                                      "lease_until": lease_until, **sweep_keys(job_id, lease_until)},
                                 add={"attempt": 1}, remove=("output_seq", "progress", "output_logged_chars"),
                                 condition=f"attribute_exists(pk) AND {condition}", values=values))
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            return Claim(job=None, current=self._live(from_low_level(exc.response.get("Item")), with_output=False))
        item = answer["Attributes"]
        job = read_job(item)
        if job.error is not None and job.error.code == UNREADABLE.code:
            # Written by another version of aijobs: it can never run here. It fails now, for good.
            return Claim(job=None, current=self._fail_unreadable(item))
        if job.batch_id is not None and job.attempt == 1 and self._batches is not None:
            self._batches.job_started(job)
        return Claim(job=job, current=job)

    def append_outputs(self, pieces: list[OutputPiece]) -> dict[OutputPiece, None]:
        """Write running attempts' pieces to their jobs' output logs, up to 25 a call (``BatchWriteItem``; the job
        items are not touched: a write's units follow the item's size, and a piece is small)."""
        with self._table.batch_writer() as batch:  # retries unprocessed items itself
            for piece in pieces:
                batch.put_item(Item={
                    **output_chunk_key(piece.job_id, piece.attempt, piece.seq), "text": piece.text,
                    "progress": to_attributes(piece.progress),
                    # outlives the job (which expires its retention after it ends, at most timeout_s from now)
                    "expires_at": self._now() + self._retention_s + piece.timeout_s})
        return {}

    def output_texts(self, chunks: list[tuple[str, int, int]]) -> dict[tuple[str, int, int], str]:
        """The text of each chunk (job id, attempt, seq) that is in its output log (BatchGetItem: a key that is not
        there is charged as a read too)."""
        keys = [output_chunk_key(*chunk) for chunk in chunks]
        found = {(item["pk"], item["sk"]): str(item["text"]) for item in self._batch_get(keys, consistent=False)}
        return {chunk: found[at] for chunk, key in zip(chunks, keys, strict=True)
                if (at := (key["pk"], key["sk"])) in found}

    def output_chunks(self, job_id: str, attempt: int, *, after: int, limit: int | None = None,
                      consistent: bool = False, first_window: int = 4) -> list[OutputChunk]:
        """The pieces of an attempt's output log that follow piece ``after``, in order, up to the first one not there
        (``limit`` at most). Read by key (BatchGetItem) in windows of ``first_window`` keys, then twice as many, ...
        up to 100: DynamoDB charges a key that is not there as a read, so a read costs about what it returns,
        whatever the log's length (a live stream, which mostly finds nothing new, looks at one key at first)."""
        chunks: list[OutputChunk] = []
        window = first_window
        while limit is None or len(chunks) < limit:
            size = window if limit is None else min(window, limit - len(chunks))
            first = after + len(chunks) + 1
            keys = [output_chunk_key(job_id, attempt, seq) for seq in range(first, first + size)]
            found = {str(item["sk"]): item for item in self._batch_get(keys, consistent=consistent)}
            for key in keys:
                if (item := found.get(key["sk"])) is None:
                    return chunks
                chunks.append(OutputChunk(str(item["text"]), Progress.model_validate(item.get("progress") or {})))
            window = min(window * 2, 100)
        return chunks

    def mark_watched(self, job: Job) -> None:
        """Note that someone looks at the running attempt now (its worker then flushes its output as it comes); a
        no-op once the attempt has moved on."""
        conditional(self._table.update_item, Key=job_key(job.id), **update_request(
            set={"watched_at": self._now()}, condition="#status = :running AND #attempt = :attempt",
            values={":running": JobStatus.in_progress.value, ":attempt": job.attempt}))

    def partial_output(self, job: Job) -> tuple[str, Progress | None]:
        """A running job's output so far (its attempt's output log), and how far its model call has got."""
        chunks = self.output_chunks(job.id, job.attempt, after=0, consistent=True)
        return "".join(c.text for c in chunks), chunks[-1].progress if chunks else None

    def _output(self, job: Job, output_text: str) -> tuple[dict[str, Any], str]:
        """Where an output is kept (the item, or the results bucket when too large), and the field it replaces."""
        if self._blobs is not None and len(output_text.encode()) > INLINE_OUTPUT_BYTES:
            key = f"outputs/{job.id}/{job.attempt}"
            self._blobs.put(key, output_text)
            return {"output_key": key}, "output_text"
        return {"output_text": output_text}, "output_key"

    def complete_job(self, job: Job, *, output_text: str | None, usage: Usage, price: Price,
                     run: RunRecord | None = None) -> Job | None:
        """Complete the job this worker holds the claim of, with its output (the text, or for an embedding or image
        job none: its files are in ``run``)."""
        output, stale = self._output(job, output_text) if output_text is not None else ({}, "output_key")
        # A success clears the error of an earlier attempt.
        return self._finish(job, JobStatus.completed, {**output, "usage": usage, **_price_fields(price),
                                                       **_run_fields(run)}, remove=("error", stale))

    def put_output_file(self, job: Job, name: str, body: bytes, *, content_type: str) -> str:
        """Store a file of the attempt's output (an embedding job's vectors, an image) in the results bucket: its
        key, which the job item keeps (``RunRecord.output_files``)."""
        if self._blobs is None:
            raise RuntimeError("no results bucket is configured (AIJOBS_RESULTS_BUCKET): files cannot be kept")
        key = f"outputs/{job.id}/{job.attempt}/{name}"
        self._blobs.put_bytes(key, body, content_type=content_type)
        return key

    def output_file_text(self, key: str) -> str:
        """An output file's content (an embedding job's vectors), as text."""
        if self._blobs is None:
            raise RuntimeError("no results bucket is configured (AIJOBS_RESULTS_BUCKET)")
        return self._blobs.get(key)

    def file_link(self, key: str, *, ttl_s: int) -> FileLink:
        """A presigned URL of an output file, valid ``ttl_s``."""
        if self._blobs is None:
            raise RuntimeError("no results bucket is configured (AIJOBS_RESULTS_BUCKET)")
        return self._blobs.link(key, ttl_s=ttl_s, now=self._clock())

    def cancel_job(self, job: Job) -> Job | None:
        """Cancel a queued or running job, if it is still as read; a running job's worker then finds its claim
        lost and drops its outcome (``keep_cancelled_run`` keeps what the model made)."""
        return self._finish(job, JobStatus.cancelled, {}, expected=job.status)

    def keep_cancelled_run(self, job: Job, *, output_text: str | None, usage: Usage, price: Price,
                           run: RunRecord) -> bool:
        """On a job cancelled while this attempt ran: the output, usage and cost of the run (it was paid for); the
        output is not kept once the job's content was deleted (its usage and cost are)."""
        output, _ = self._output(job, output_text) if output_text is not None else ({}, "")
        kept = {"usage": usage, **_price_fields(price), **_run_fields(run)}
        # Kept once: the run's record (its duration) is written with it. (An earlier attempt may have left usage.)
        condition = "#status = :cancelled AND #attempt = :attempt AND attribute_not_exists(#duration_ms)"
        values = {":cancelled": JobStatus.cancelled.value, ":attempt": job.attempt}

        def keep(fields: dict[str, Any], deleted: str) -> bool:
            return conditional(self._table.update_item, Key=job_key(job.id), **update_request(
                set=fields | kept, condition=f"{condition} AND {deleted}", values=values)) is not None

        if keep(output, "attribute_not_exists(#content_deleted_at)"):
            return self._run_kept(job, usage, price)
        if "output_key" in output and self._blobs is not None:  # written for nothing: its content was deleted
            self._blobs.delete(output["output_key"])
        return keep({}, "attribute_exists(#content_deleted_at)") and self._run_kept(job, usage, price)

    def _run_kept(self, job: Job, usage: Usage, price: Price) -> bool:
        if job.batch_id is not None and self._batches is not None:
            self._batches.run_kept(job, usage=usage, cost_usd=price.cost_usd)
        return True

    def delete_content(self, job: Job) -> bool:
        """Delete an ended job's input and output (its request's input and instructions, its output, in the item or
        the results bucket, and its output log), keeping what it was, what it used and cost; False when it was
        deleted already or has not ended."""
        request = job.request.model_dump(mode="json", exclude_none=True) | {"input": ""}
        request.pop("instructions", None)
        if not conditional(self._table.update_item, Key=job_key(job.id), **update_request(
                set={"content_deleted_at": self._now(), "request": request},
                remove=("output_text", "output_key", "output_files", "progress"),
                condition="#status IN (:completed, :failed, :cancelled) AND attribute_not_exists(#content_deleted_at)",
                values={f":{s.value}": s.value for s in (JobStatus.completed, JobStatus.failed,
                                                         JobStatus.cancelled)})):
            return False
        if self._blobs is not None:
            for key in filter(None, [job.output_key, *(job.output_files or [])]):
                self._blobs.delete(key)
        # The output log's partition, and the job's own OUT# items: where pieces were written before the log had a
        # partition of its own (they expire with their jobs; this second Query can go once every such job has).
        logs = (KeyCondition("pk").eq(output_log_partition(job.id)),
                KeyCondition("pk").eq(job_key(job.id)["pk"]) & KeyCondition("sk").begins_with("OUT#"))
        with self._table.batch_writer() as batch:
            for log in logs:
                query: dict[str, Any] = {"KeyConditionExpression": log, "ProjectionExpression": "pk, sk"}
                while True:
                    answer = self._table.query(**query)
                    for item in answer["Items"]:
                        batch.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
                    if not (start := answer.get("LastEvaluatedKey")):
                        break
                    query["ExclusiveStartKey"] = start
        return True

    def mark_retried(self, job: Job, retry_id: str) -> bool:
        """Name the job that re-runs this one; once, and only while the job is as read."""
        return conditional(self._table.update_item, Key=job_key(job.id), **update_request(
            set={"retried_by": retry_id}, condition="#status = :status AND attribute_not_exists(#retried_by)",
            values={":status": job.status.value})) is not None

    def fail_job(self, job: Job, error: ErrorDetail, *, spent: Spent | None = None) -> Job | None:
        """Fail the job this worker holds the claim of; ``spent``: what its attempts used and cost (else nothing
        that was reported)."""
        carried = {} if spent is None else spent.fields()
        return self._finish(job, JobStatus.failed, {"error": error, **carried})

    def fail_stuck_job(self, job: Job, error: ErrorDetail) -> Job | None:
        """Fail a job nobody runs (its message reached the dead-letter queue), if it is still as read."""
        return self._finish(job, JobStatus.failed, {"error": error}, expected=job.status)

    def requeue_job(self, job: Job, error: ErrorDetail, *, retry_at: int, spent: Spent | None = None) -> bool:
        """Hand an in_progress job back to the queue after a retryable failure; its message returns at ``retry_at``.
        ``spent``: what the job's attempts have used and cost so far (an attempt whose output was thrown away),
        shown on the job and added to by its later attempts.

        Should the message not return, the sweeper sends it again once ``retry_at`` is past by the grace.
        """
        carried = {} if spent is None else spent.fields()
        return self._transition(job, set={"status": JobStatus.queued.value, "error": error, **carried,
                                          **sweep_keys(job.id, retry_at + self._grace_s)},
                                remove=("lease_until",)) is not None

    def _finish(self, job: Job, status: JobStatus, fields: dict[str, Any], remove: tuple[str, ...] = (),
                expected: JobStatus = JobStatus.in_progress) -> Job | None:
        """The job as it ended (its output left unread), or None when it was no longer as read."""
        now = self._now()
        # A job with a webhook destination stays in the sweep index until its webhook is queued (a claimed one is
        # there, due at its lease's end: should the webhook be lost, the sweeper queues it then); any other job
        # leaves it.
        keys: dict[str, Any] = {}
        drop: tuple[str, ...] = SWEEP_KEYS
        if self._has_webhook_destinations(job):
            drop = ()
            if expected is not JobStatus.in_progress:  # not ended by its worker: it may not be in the index
                keys = sweep_keys(job.id, now + self._grace_s)
            # Its final event is made by this write (as mark_final_event would make it): one write less to queue it.
            ended_as = job.model_copy(update={"status": status, "completed_at": now})
            keys |= {"webhook_event_id": new_webhook_id(), "webhook_event_for": ended_as.terminal_instance,
                     "webhook_enqueued": False}
        if job.batch_id is not None:  # among its batch's results, in the order they ended
            keys["gsi2sk"] = batch_result_key(now, job.id)
        ended = self._transition(job, set={"status": status.value, "completed_at": now,
                                           "expires_at": now + self._retention_s, **fields, **keys},
                                 remove=("lease_until", *remove, *drop), expected=expected)
        if ended is None:
            return None
        if job.batch_id is not None and self._batches is not None:  # counted by the write that won
            self._batches.job_ended(job, status, usage=fields.get("usage", job.usage),
                                    cost_usd=fields.get("cost_usd", job.cost_usd))
        return read_job(ended)

    def _transition(self, job: Job, *, set: dict[str, Any], remove: tuple[str, ...],
                    expected: JobStatus = JobStatus.in_progress) -> dict[str, Any] | None:
        """The item as written (the write's own answer: no read), or None when the job was no longer as read."""
        # Only the worker holding this attempt's claim (or the sweeper, for a job as it read it) moves the job on.
        answer = conditional(self._table.update_item, Key=job_key(job.id), ReturnValues="ALL_NEW",
                             **update_request(set={k: v for k, v in set.items() if v is not None}, remove=remove,
                                              condition="#status = :expected AND #attempt = :attempt",
                                              values={":expected": expected.value, ":attempt": job.attempt}))
        return None if answer is None else dict(answer["Attributes"])

    def _fail_unreadable(self, item: dict[str, Any]) -> Job | None:
        now = self._now()
        conditional(self._table.update_item, Key={"pk": item["pk"], "sk": item["sk"]},
                    **update_request(set={"status": JobStatus.failed.value, "error": UNREADABLE, "completed_at": now,
                                          "expires_at": now + self._retention_s},
                                     remove=("lease_until", *SWEEP_KEYS),
                                     condition="#attempt = :attempt", values={":attempt": item.get("attempt")}))
        return self._live(self._table.get_item(Key={"pk": item["pk"], "sk": item["sk"]},
                                               ConsistentRead=True).get("Item"), with_output=False)

    # --- the sweep index --------------------------------------------------------------------------

    def due_for_sweep(self, *, limit: int) -> list[str]:
        """Ids of the jobs the sweeper should look at now, soonest due first, at most ``limit`` (per shard)."""
        now = f"{self._now():010d}~"  # "~" sorts after "#<id>": every job due up to this second
        ids: list[str] = []
        for shard in range(SWEEP_SHARDS):
            due = KeyCondition("gsi3pk").eq(sweep_partition(shard)) & KeyCondition("gsi3sk").lte(now)
            answer = self._table.query(IndexName=SWEEP_INDEX, KeyConditionExpression=due, Limit=limit)
            ids += [str(item["gsi3sk"]).split("#", 1)[1] for item in answer["Items"]]
        return ids

    def sweep_later(self, job: Job, *, due: int) -> None:
        """Look at the job again at ``due`` (it was looked at, and is not due yet or was just repaired)."""
        self._sweep_at(job.id, job.status, due)

    def sweep_queued_later(self, job_id: str, *, due: int) -> None:
        """Look at a queued job at ``due``: the backstop of a job parked by its tenant's concurrency limit (should
        its release be lost, the sweeper sends its message again then). A no-op once the job has moved on."""
        self._sweep_at(job_id, JobStatus.queued, due)

    def _sweep_at(self, job_id: str, status: JobStatus, due: int) -> None:
        conditional(self._table.update_item, Key=job_key(job_id),
                    **update_request(set=sweep_keys(job_id, due), condition="#status = :status",
                                     values={":status": status.value}))

    def forget_sweep(self, job_id: str) -> None:
        """Nothing about the job can get stuck any more: out of the sweep index."""
        conditional(self._table.update_item, Key=job_key(job_id),
                    **update_request(remove=SWEEP_KEYS, condition="attribute_exists(pk)"))

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

    def take_redelivery(self, job_id: str, *, per_hour: int) -> int:
        """Count one redelivery of the job's webhook in its hour: 0 when taken, else the seconds until that hour
        ends (``per_hour`` were taken in it already). The hour starts with its first redelivery."""
        now = self._now()
        counted = conditional(self._table.update_item, Key=job_key(job_id), **update_request(
            add={"redeliveries": 1}, condition="#redeliveries_since > :since AND #redeliveries < :limit",
            values={":since": now - 3600, ":limit": per_hour}))
        if counted is None:
            counted = conditional(self._table.update_item, Key=job_key(job_id), **update_request(
                set={"redeliveries_since": now, "redeliveries": 1},
                condition="attribute_exists(pk) AND (attribute_not_exists(#redeliveries_since) OR "
                          "#redeliveries_since <= :since)", values={":since": now - 3600}))
        if counted is not None:
            return 0
        item = self._table.get_item(Key=job_key(job_id), ConsistentRead=True).get("Item") or {}
        return max(1, int(_number(item.get("redeliveries_since", now))) + 3600 - now)

    def mark_webhook_enqueued(self, job_id: str, webhook_id: str) -> None:
        # The condition fails only when the job moved on to another event: then there is nothing to mark.
        conditional(self._table.update_item, Key=job_key(job_id),
                    **update_request(set={"webhook_enqueued": True}, remove=SWEEP_KEYS,
                                     condition="#webhook_event_id = :id", values={":id": webhook_id}))
