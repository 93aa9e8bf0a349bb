"""Jobs: the request a client sends, the job as stored and as the API shows it, batches and status queries."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from aijobs.models.common import ErrorDetail, unicode_text
from aijobs.models.prompts import PromptRef
from aijobs.models.tenants import OnLimit

MAX_INPUT_CHARS = 100_000
# A job item (the request and an inline output of up to 100 KB) must stay under DynamoDB's 400 KB. A single POST
# cannot come near it (its body stops at 256 KB; the slack covers the defaults a stored request spells out), but a
# batch item could (100,000 four-byte characters), and would fail the whole batch write.
MAX_REQUEST_BYTES = 260 * 1024
# DynamoDB holds no number of magnitude below 1e-130; no model tells a temperature apart at this precision.
TEMPERATURE_DECIMALS = 6
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

    # A provider's model id (gpt-4o-mini, ft:gpt-4o:org::id, meta-llama/Llama-3-8B): printable ASCII, no spaces.
    model: Annotated[str | None, Field(min_length=1, max_length=128, pattern=r"^[!-~]+$")] = None
    # instructions come before input so that the size check of input sees them
    instructions: Annotated[str | None, Field(max_length=MAX_INPUT_CHARS)] = None
    # The limits of a text input are documented, and checked with the instructions by _input_fits.
    # Required, unless ``prompt`` names a registry prompt whose version has template messages (then the input
    # given comes after them).
    input: (Annotated[str, Field(json_schema_extra={"minLength": 1, "maxLength": MAX_INPUT_CHARS})]
            | Annotated[list[Message], Field(min_length=1, max_length=256)] | None) = None
    max_output_tokens: Annotated[int | None, Field(ge=1, le=128_000)] = None
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    stream: bool = False
    metadata: dict[str, str] = Field(default_factory=dict)
    timeout_s: Annotated[int, Field(ge=1, le=840)] = 300
    # Checked against server-side request forgery by the submit path (aijobs.webhooks.guard), not here:
    # what is allowed depends on the deployment's settings.
    callback_url: Annotated[str | None, Field(min_length=1, max_length=2048)] = None
    # Over the token rate or the daily budget: refused with a 429 ("reject"), or kept queued until the limit allows
    # ("defer", with status_details); null: the tenant's on_limit.
    on_limit: OnLimit | None = None
    # A registry prompt (POST /v1/prompts), as OpenAI's ``prompt`` parameter: resolved when the job is submitted
    # (aijobs/prompts.py) into the instructions and input the job runs; the job records prompt_id and prompt_version.
    prompt: PromptRef | None = None

    @field_validator("input")
    @classmethod
    def _input_fits(cls, value: str | list[Message] | None, info: ValidationInfo) -> str | list[Message] | None:
        if value is None:
            return value
        text = unicode_text(value if isinstance(value, str) else "".join(m.content for m in value))
        if not text.strip():
            raise ValueError("must not be empty")
        if len(text) + len(info.data.get("instructions") or "") > MAX_INPUT_CHARS:
            raise PydanticCustomError("too_large", "input and instructions must be at most {limit} characters "
                                      "in all", {"limit": MAX_INPUT_CHARS})
        return value

    @field_validator("temperature")
    @classmethod
    def _temperature_to_precision(cls, value: float | None) -> float | None:
        return None if value is None else round(value, TEMPERATURE_DECIMALS) + 0.0  # + 0.0: no -0.0

    @field_validator("metadata")
    @classmethod
    def _metadata_is_small(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_METADATA_KEYS:
            raise ValueError(f"at most {MAX_METADATA_KEYS} keys")
        if any(not 0 < len(k) <= 64 or len(v) > 512 for k, v in value.items()):
            raise ValueError("keys must be 1-64 characters and values at most 512")
        for key, item in value.items():
            unicode_text(key)
            unicode_text(item)
        return value

    @model_validator(mode="after")
    def _fits_an_item(self) -> JobRequest:
        if self.input is None and self.prompt is None:
            raise PydanticCustomError("input_missing", "input is required (unless prompt names a registry prompt)")
        if len(self.model_dump_json().encode()) > MAX_REQUEST_BYTES:
            raise PydanticCustomError("too_large", "a job request must be at most {limit} bytes as JSON (UTF-8)",
                                      {"limit": MAX_REQUEST_BYTES})
        return self


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    # Counted by aijobs' tokenizer, not reported by the provider: a call stopped by a cancel (aijobs/tokens.py).
    estimated: bool = False


class Reservation(BaseModel):
    """What a job reserved at admission (aijobs/rates.py): tokens in its tenant's minute, its estimated cost in the
    day's spend. Its end settles them."""

    day: str  # the UTC day (YYYY-MM-DD) and the minute of that day (0-1439) whose window holds them
    minute: int
    tokens: int
    cost_usd: Decimal = Decimal(0)  # held in that day's spend until the job ends


class StatusDetails(BaseModel):
    """Why a queued job waits: a limit deferred it (``on_limit: "defer"``), and when it may start."""

    reason: Literal["tokens_per_minute", "daily_budget"]
    not_before: int = Field(description="Unix seconds: the job starts once this time is reached and the limit allows")


class Progress(BaseModel):
    """How far a running job's model call has got: the output so far is flushed to the job's output log."""

    output_tokens: int = 0  # streamed pieces so far (one a token, as providers stream)
    output_chars: int = 0
    elapsed_ms: int = 0


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
    price_known: bool | None = None  # False: the model's price is unknown, cost_usd is at the fallback price
    error: ErrorDetail | None = None
    attempt: int = 0
    lease_until: int | None = None
    expires_at: int | None = None
    schedule_id: str | None = None  # set on the jobs a schedule creates
    retry_of: str | None = None  # the failed or cancelled job this one re-runs
    retried_by: str | None = None  # the job that re-runs this one
    output_seq: int | None = None  # the last chunk of this attempt's output log (OUT# items), while it streams
    progress: Progress | None = None
    duration_ms: int | None = None  # the last attempt's model call, as the worker timed it
    # Once the attempt has ended: how much of output_text its output log holds (the log's chunks up to output_seq);
    # a stream replays the log, then the rest of output_text.
    output_logged_chars: int | None = None
    # The final event's webhook: its id (stable across retries), which terminal state it is for, whether queued.
    webhook_event_id: str | None = None
    webhook_event_for: str | None = None
    webhook_enqueued: bool = False
    reservation: Reservation | None = None  # what it reserved at admission (not shown by the API)
    status_details: StatusDetails | None = None  # a deferred job's reason to wait (it has no reservation yet)
    # Which API made it (its webhooks and events speak that API's language): POST /v1/jobs, or POST /v1/responses.
    surface: Literal["jobs", "responses"] = "jobs"
    background: bool = True  # a response made with background: false is waited for by its request
    provider_model: str | None = None  # the model the provider answered with (e.g. a dated snapshot)
    backend: str | None = None  # the model backend that answered (a fallback's when the model's own failed)
    finish_reason: str | None = None  # why the model stopped: "stop", "length" (max_output_tokens), ...
    prompt_id: str | None = None  # the registry prompt it was made from (POST /v1/prompts), and which version
    prompt_version: int | None = None
    content_deleted_at: int | None = None  # its input and output were deleted (DELETE /v1/jobs/{id}/content)

    @property
    def terminal_instance(self) -> str:
        """Which terminal state an event is for: an explicit retry that ends again makes a new event."""
        return f"{self.status.value}#{self.attempt}#{self.completed_at}"

    @property
    def duration(self) -> int | None:
        """The model call's time; for a job that ended without one, the time from its start to its end."""
        if self.duration_ms is not None:
            return self.duration_ms
        return (self.completed_at - self.started_at) * 1000 if self.completed_at and self.started_at else None

    def to_public(self, *, stream_base: str | None = None) -> JobOut:
        """As the API shows it; ``stream_base``: the URL of the front that streams (the job then names its stream)."""
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
            price_known=self.price_known if self.cost_usd is not None else None,
            error=self.error,
            attempt=self.attempt,
            metadata=self.request.metadata,
            schedule_id=self.schedule_id,
            retry_of=self.retry_of,
            retried_by=self.retried_by,
            progress=self.progress if self.status is JobStatus.in_progress else None,
            duration_ms=self.duration if self.status.is_terminal else None,
            stream_url=f"{stream_base.rstrip('/')}/v1/jobs/{self.id}/stream" if stream_base else None,
            status_details=self.status_details if self.status is JobStatus.queued else None,
            provider_model=self.provider_model,
            backend=self.backend,
            finish_reason=self.finish_reason,
            prompt_id=self.prompt_id,
            prompt_version=self.prompt_version,
            content_deleted_at=self.content_deleted_at,
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
    price_known: bool | None = None  # false: cost_usd is at the fallback price (the model's price is unknown)
    error: ErrorDetail | None
    attempt: int
    metadata: dict[str, str]
    schedule_id: str | None = None
    retry_of: str | None = None
    retried_by: str | None = None
    progress: Progress | None = None  # while it runs: the output so far is in `output`
    duration_ms: int | None = None  # once it has ended: its model call's time (else from its start to its end)
    stream_url: str | None = None  # GET it for the job's server-sent events (on the front that streams)
    status_details: StatusDetails | None = None  # a queued job deferred by a limit: why, and when it may start
    provider_model: str | None = None  # the model the provider answered with (e.g. a dated snapshot of `model`)
    # The model backend that answered; when a fallback model did, provider_model is it and `model` the one asked.
    backend: str | None = None
    finish_reason: str | None = None  # "stop", or "length" when it stopped at max_output_tokens
    prompt_id: str | None = None  # the registry prompt the job was made from, and its version
    prompt_version: int | None = None
    content_deleted_at: int | None = None  # when its input and output were deleted, at its owner's request


class JobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobOut]
    next_cursor: str | None


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Items are validated one by one so that one bad item does not sink the batch.
    jobs: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_BATCH)]


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
