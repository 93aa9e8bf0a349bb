"""Typed models: what a client sends, what is stored, what the API answers."""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

MAX_INPUT_CHARS = 100_000
MAX_BATCH = 100
MAX_METADATA_KEYS = 16


class JobStatus(StrEnum):
    queued = "queued"
    in_progress = "in_progress"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.completed, JobStatus.failed, JobStatus.cancelled)


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant"]
    content: Annotated[str, Field(min_length=1)]


class JobRequest(BaseModel):
    """The body of ``POST /v1/jobs``."""

    model_config = ConfigDict(extra="forbid")

    model: Annotated[str | None, Field(min_length=1, max_length=128)] = None
    # instructions come before input so that the size check of input sees them
    instructions: Annotated[str | None, Field(max_length=MAX_INPUT_CHARS)] = None
    input: str | Annotated[list[Message], Field(min_length=1, max_length=256)]
    max_output_tokens: Annotated[int | None, Field(ge=1, le=128_000)] = None
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    stream: bool = False
    metadata: dict[str, str] = Field(default_factory=dict)
    timeout_s: Annotated[int, Field(ge=1, le=840)] = 300
    # Checked against server-side request forgery by the submit path (aijobs.webhooks.guard), not here:
    # what is allowed depends on the deployment's settings.
    callback_url: Annotated[str | None, Field(min_length=1, max_length=2048)] = None

    @field_validator("input")
    @classmethod
    def _input_fits(cls, value: str | list[Message], info: ValidationInfo) -> str | list[Message]:
        text = value if isinstance(value, str) else "".join(m.content for m in value)
        if not text.strip():
            raise ValueError("must not be empty")
        if len(text) + len(info.data.get("instructions") or "") > MAX_INPUT_CHARS:
            raise PydanticCustomError("too_large", "input and instructions must be at most {limit} characters "
                                      "in all", {"limit": MAX_INPUT_CHARS})
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_is_small(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_METADATA_KEYS:
            raise ValueError(f"at most {MAX_METADATA_KEYS} keys")
        if any(not 0 < len(k) <= 64 or len(v) > 512 for k, v in value.items()):
            raise ValueError("keys must be 1-64 characters and values at most 512")
        return value


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


class JobError(BaseModel):
    type: str
    code: str
    message: str
    retryable: bool


class Job(BaseModel):
    """A job as stored."""

    id: str
    tenant: str
    status: JobStatus
    model: str
    request: JobRequest
    created_at: int
    started_at: int | None = None
    completed_at: int | None = None
    output_text: str | None = None
    output_key: str | None = None  # an output too large for the item, in the results bucket
    usage: Usage | None = None
    cost_usd: Decimal | None = None
    error: JobError | None = None
    attempt: int = 0
    lease_until: int | None = None
    expires_at: int | None = None
    schedule_id: str | None = None  # set on the jobs a schedule creates
    # The final event's webhook: its id (stable across retries), which terminal state it is for, whether queued.
    webhook_event_id: str | None = None
    webhook_event_for: str | None = None
    webhook_enqueued: bool = False

    def to_public(self) -> JobOut:
        return JobOut(
            id=self.id,
            status=self.status,
            model=self.model,
            created_at=self.created_at,
            started_at=self.started_at,
            completed_at=self.completed_at,
            output=JobOutput(text=self.output_text) if self.output_text is not None else None,
            usage=self.usage,
            cost_usd=float(self.cost_usd) if self.cost_usd is not None else None,
            error=self.error,
            attempt=self.attempt,
            metadata=self.request.metadata,
            schedule_id=self.schedule_id,
        )


class JobOutput(BaseModel):
    text: str


class JobOut(BaseModel):
    """A job as ``GET /v1/jobs/{id}`` answers it; timestamps are unix seconds."""

    id: str
    object: Literal["job"] = "job"
    status: JobStatus
    model: str
    created_at: int
    started_at: int | None
    completed_at: int | None
    output: JobOutput | None
    usage: Usage | None
    cost_usd: float | None
    error: JobError | None
    attempt: int
    metadata: dict[str, str]
    schedule_id: str | None = None


class JobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobOut]
    next_cursor: str | None


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Items are validated one by one so that one bad item does not sink the batch.
    jobs: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_BATCH)]


class ErrorDetail(BaseModel):
    type: str
    code: str
    message: str
    retryable: bool


class BatchItemResult(BaseModel):
    id: str | None = None
    status: JobStatus | None = None
    error: ErrorDetail | None = None


class BatchResponse(BaseModel):
    data: list[BatchItemResult]


class StatusRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]],
                   Field(min_length=1, max_length=MAX_BATCH)]


class JobStatusItem(BaseModel):
    id: str
    status: JobStatus | Literal["not_found"]


class StatusResponse(BaseModel):
    data: list[JobStatusItem]


class JobMessage(BaseModel):
    """The body of a jobs-queue message."""

    model_config = ConfigDict(extra="forbid")

    job_id: Annotated[str, Field(pattern=r"^job_[0-9A-Z]{26}$")]


# --- schedules ------------------------------------------------------------------------------------

SCHEDULE_ID_PATTERN = r"^sch_[0-9A-Z]{26}$"
# Static schedules (ScheduleV2 events in template.yaml) name themselves; sch_ ids are the API's.
STATIC_SCHEDULE_ID_PATTERN = r"^(?!sch_)[A-Za-z0-9_.-]{1,64}$"
MAX_SCHEDULE_FIRE_TIMES = 5

ExpressionText = Annotated[str, Field(min_length=1, max_length=256,
                                  description="rate(5 minutes), cron(0 9 ? * MON-FRI *) or at(2030-01-31T09:30:00)")]
TimeZoneName = Annotated[str, Field(min_length=1, max_length=64, description="IANA time zone name, e.g. Europe/Paris")]


class ScheduleRequest(BaseModel):
    """The body of ``POST /v1/schedules``."""

    model_config = ConfigDict(extra="forbid")

    expression: ExpressionText
    timezone: TimeZoneName = "UTC"
    job: JobRequest
    enabled: bool = True


class ScheduleUpdate(BaseModel):
    """The body of ``PATCH /v1/schedules/{id}``: the fields given change, the others stay."""

    model_config = ConfigDict(extra="forbid")

    expression: ExpressionText | None = None
    timezone: TimeZoneName | None = None
    job: JobRequest | None = None
    enabled: bool | None = None


class Schedule(BaseModel):
    """A schedule as stored."""

    id: str
    tenant: str
    expression: str
    timezone: str
    job: JobRequest
    enabled: bool
    created_at: int
    updated_at: int
    # When the schedule was last armed (created, its timing changed, or enabled): a rate counts from here.
    armed_at: int
    version: int = 1


class ScheduleOut(BaseModel):
    """A schedule as the API answers it; timestamps are unix seconds."""

    id: str
    object: Literal["schedule"] = "schedule"
    expression: str
    timezone: str
    job: JobRequest
    enabled: bool
    created_at: int
    updated_at: int
    next_fire_times: list[int] = Field(description="The next fire times (unix seconds); empty when disabled or done")


class ScheduleList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ScheduleOut]
    next_cursor: str | None


class ScheduledFire(BaseModel):
    """The event SchedulerFunction receives: the schedule target's Input, context attributes filled in.

    API schedules carry their id and tenant; the job is read from the schedule item at fire time. Static
    schedules declared in template.yaml carry their job (and tenant) in the Input itself.
    """

    # A refused event is logged by Lambda: its errors must not echo the job's prompt.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    schedule_id: Annotated[str, Field(min_length=1, max_length=64)]
    scheduled_time: AwareDatetime
    tenant: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = None
    job: JobRequest | None = None
    execution_id: str | None = None
    attempt: int | None = None

    @model_validator(mode="after")
    def _api_or_static(self) -> ScheduledFire:
        if self.job is None and not re.fullmatch(SCHEDULE_ID_PATTERN, self.schedule_id):
            raise ValueError("an event without a job must name an API schedule (sch_...)")
        if self.job is not None and (self.tenant is None or not re.fullmatch(STATIC_SCHEDULE_ID_PATTERN,
                                                                           self.schedule_id)):
            raise ValueError("a static schedule's event needs a tenant and a schedule_id of its own (not sch_...)")
        return self


class FireOutcome(BaseModel):
    """What one fire did: created a job, found the job of an earlier delivery of the same fire, or nothing."""

    outcome: Literal["created", "duplicate", "skipped"]
    schedule_id: str
    job_id: str | None = None
    reason: str | None = None


# --- webhooks -------------------------------------------------------------------------------------


class DeliveryMessage(BaseModel):
    """The body of a deliveries-queue message: one attempt of one event, due at a time (chained past SQS's 15 min)."""

    model_config = ConfigDict(extra="forbid")

    job_id: Annotated[str, Field(pattern=r"^job_[0-9A-Z]{26}$")]
    webhook_id: Annotated[str, Field(pattern=r"^msg_[0-9A-Z]{26}$")]
    attempt: Annotated[int, Field(ge=1, le=1000)]
    first_attempt: Annotated[int, Field(ge=1, le=1000)]  # where this run of the retry schedule began
    due_at: float


class DeliveryAttempt(BaseModel):
    """One attempt in the delivery ledger; ``outcome`` is ``sending`` while the request is in flight."""

    object: Literal["delivery_attempt"] = "delivery_attempt"
    webhook_id: str
    event_type: str
    attempt: int
    at: int
    outcome: Literal["sending", "delivered", "retrying", "failed", "stopped"]
    status_code: int | None = None
    duration_ms: int | None = None
    error: str | None = None
    next_attempt_at: int | None = None


class DeliveryList(BaseModel):
    object: Literal["list"] = "list"
    data: list[DeliveryAttempt]


class Redelivery(BaseModel):
    object: Literal["redelivery"] = "redelivery"
    webhook_id: str
    attempt: int
    status: Literal["queued"] = "queued"


class WebhookSecret(BaseModel):
    """A tenant's signing secret; ``expires_at`` is set once a rotation has replaced it."""

    id: str
    secret: str
    created_at: int
    expires_at: int | None = None


class WebhookSecretList(BaseModel):
    object: Literal["list"] = "list"
    data: list[WebhookSecret]


class RotateSecretRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # How long the previous secrets stay valid; unset, the deployment's default (24 h).
    overlap_s: Annotated[int | None, Field(ge=0, le=7 * 86_400)] = None
