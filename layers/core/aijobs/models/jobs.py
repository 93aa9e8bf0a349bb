"""Jobs: the request a client sends, the job as stored and as the API shows it, batches and status queries."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import struct
from collections.abc import Callable
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from aijobs.models.common import ErrorDetail, Model, unicode_text
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
BATCH_ID_PATTERN = r"^[!-~]{1,64}$"  # printable ASCII: any id that could be one answers 404 when there is none
MAX_METADATA_KEYS = 16
# An embeddings job's texts: as many as OpenAI's embeddings endpoint takes in one request, each within its models'
# 8,192-token input limit (at 4 characters a token, well within it for English; the provider refuses longer ones).
MAX_EMBEDDING_INPUTS = 2048
MAX_EMBEDDING_INPUT_CHARS = 32_000
# An image's description: gpt-image-1's limit (dall-e-3 takes 4,000, dall-e-2 1,000: the provider refuses more).
MAX_IMAGE_PROMPT_CHARS = 32_000
MAX_IMAGES = 10
# A JSON schema nested deeper than this is refused (validating it recurses once a level).
MAX_SCHEMA_DEPTH = 32


class JobStatus(StrEnum):
    queued = "queued"
    in_progress = "in_progress"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.completed, JobStatus.failed, JobStatus.cancelled)


class Message(Model):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant"]
    content: Annotated[str, Field(min_length=1)]


def as_base64(vector: list[float]) -> str:
    """A vector as OpenAI's embeddings API sends it with ``encoding_format: "base64"``: little-endian float32."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def _plain_json(value: Any) -> Any:
    """A JSON value as read back from DynamoDB (numbers as Decimals) in plain Python types, so that it is sent and
    validated as the client wrote it."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_json(item) for item in value]
    return value


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _refs(value: Any) -> list[str]:
    """Every ``$ref`` in a schema (a non-string one counts as a bad one)."""
    if isinstance(value, dict):
        own = [ref if isinstance(ref, str) else "?" for key, ref in value.items() if key == "$ref"]
        return own + [ref for item in value.values() for ref in _refs(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in _refs(item)]
    return []


def _points_into(schema: dict[str, Any], ref: str) -> bool:
    """Whether a ``#/a/b`` JSON pointer names something in the schema."""
    node: Any = schema
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


class JsonSchemaFormat(Model):
    """A JSON schema the output must match (OpenAI's ``json_schema`` response format)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: Annotated[str | None, Field(max_length=1024)] = None
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None

    @field_validator("schema_", mode="before")
    @classmethod
    def _plain(cls, value: Any) -> Any:
        return _plain_json(value)

    @field_validator("schema_")
    @classmethod
    def _is_a_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        if _depth(value) > MAX_SCHEMA_DEPTH:
            raise PydanticCustomError("schema_too_deep", "a JSON schema may nest at most {limit} levels",
                                      {"limit": MAX_SCHEMA_DEPTH})
        for ref in _refs(value):
            if not ref.startswith("#"):
                raise PydanticCustomError("schema_remote_ref", "a JSON schema's $ref must point inside it (#/...): "
                                          "nothing is fetched")
            if ref.startswith("#/") and not _points_into(value, ref):
                raise PydanticCustomError("schema_bad_ref", "a JSON schema's $ref points nowhere: {ref}",
                                          {"ref": ref[:100]})
        from jsonschema.exceptions import SchemaError  # loaded by the first job with a schema, not at cold start
        from jsonschema.validators import validator_for

        try:
            validator_for(value).check_schema(value)
        except SchemaError as exc:
            where = "/".join(str(part) for part in exc.path) or "(top)"
            raise PydanticCustomError("invalid_schema", "is not a valid JSON Schema: {problem} at {where}",
                                      {"problem": exc.message[:200], "where": where}) from None
        return value


class JsonSchemaResponseFormat(Model):
    model_config = ConfigDict(extra="forbid")

    type: Literal["json_schema"]
    json_schema: JsonSchemaFormat


class JsonObjectResponseFormat(Model):
    model_config = ConfigDict(extra="forbid")

    type: Literal["json_object"]


ResponseFormat = Annotated[JsonSchemaResponseFormat | JsonObjectResponseFormat, Field(discriminator="type")]
JobKind = Literal["text", "embedding", "image", "ingest", "answer"]
# Made by /v1/collections, never submitted as they are: indexing a collection's documents (ingest), answering a
# search from its chunks (answer). A request of these kinds carries its ``collection`` task.
COLLECTION_KINDS = ("ingest", "answer")


class ScoredChunk(Model):
    """A chunk found by a search: ``score`` is its cosine similarity to the query, from -1 to 1 (1: the same
    direction)."""

    chunk_id: str = Field(description="<document_id>:<n>, n its place in the document from 0")
    document_id: str
    text: str
    score: float
    metadata: dict[str, str] = Field(default_factory=dict, description="Its document's metadata")


class CollectionTask(Model):
    """What a collection's job works on: an ingest job's documents, or an answer job's query log entry and the
    chunks it answers from (with their texts: the worker needs nothing else)."""

    collection_id: str
    document_ids: list[str] = Field(default_factory=list)
    query_id: str | None = None
    sources: list[ScoredChunk] = Field(default_factory=list)
# Image sizes OpenAI's image models take (dall-e-2: the squares up to 1024; dall-e-3: 1024 and 1792 sides;
# gpt-image-1: 1024 and 1536 sides, and auto); the provider refuses a size its model does not make.
ImageSize = Literal["256x256", "512x512", "1024x1024", "1792x1024", "1024x1792", "1536x1024", "1024x1536", "auto"]
# Which jobs queue a job waits in: each lane has its own queue and worker concurrency, so a high job never waits
# behind a backlog of low ones (README "How it works").
Priority = Literal["high", "normal", "low"]


class JobRequest(Model):
    """The body of ``POST /v1/jobs``."""

    model_config = ConfigDict(extra="forbid")

    # A provider's model id (gpt-4o-mini, ft:gpt-4o:org::id, meta-llama/Llama-3-8B): printable ASCII, no spaces.
    model: Annotated[str | None, Field(min_length=1, max_length=128, pattern=r"^[!-~]+$")] = None
    # instructions come before input so that the size check of input sees them
    instructions: Annotated[str | None, Field(max_length=MAX_INPUT_CHARS)] = None
    # The limits of a text input are documented, and checked with the instructions by _input_fits.
    # Required, unless ``prompt`` names a registry prompt whose version has template messages (then the input
    # given comes after them).
    # An embedding job's input is a string or a list of strings; an image job's, the image's description.
    input: (Annotated[str, Field(json_schema_extra={"minLength": 1, "maxLength": MAX_INPUT_CHARS})]
            | Annotated[list[Message], Field(min_length=1, max_length=256)]
            | Annotated[list[Annotated[str, Field(min_length=1, max_length=MAX_EMBEDDING_INPUT_CHARS)]],
                        Field(min_length=1, max_length=MAX_EMBEDDING_INPUTS)]
            | None) = None
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
    priority: Priority = "normal"  # its lane: the queue it waits in
    # A registry prompt (POST /v1/prompts), as OpenAI's ``prompt`` parameter: resolved when the job is submitted
    # (aijobs/prompts.py) into the instructions and input the job runs; the job records prompt_id and prompt_version.
    prompt: PromptRef | None = None
    # What the job makes: text (a chat completion), embedding vectors of its input texts, or images of its input.
    kind: JobKind = "text"
    # A text job's output must be JSON (json_object), or JSON matching a schema (json_schema): checked by the worker.
    response_format: ResponseFormat | None = None
    dimensions: Annotated[int | None, Field(ge=1, le=3072)] = None  # an embedding job's vector length (its model's)
    size: ImageSize | None = None  # an image job's size, and how many images it makes
    n: Annotated[int | None, Field(ge=1, le=MAX_IMAGES)] = None
    # An ingest or answer job's task (made by /v1/collections): not part of the API's request body
    collection: SkipJsonSchema[CollectionTask | None] = Field(default=None, exclude_if=lambda value: value is None)

    @field_validator("input")
    @classmethod
    def _input_fits(cls, value: str | list[Message] | None, info: ValidationInfo) -> str | list[Message] | None:
        if value is None:
            return value
        text = unicode_text(value if isinstance(value, str) else "".join(
            m if isinstance(m, str) else m.content for m in value))
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
        if self.input is None and self.prompt is None and self.kind != "ingest":
            raise PydanticCustomError("input_missing", "input is required (unless prompt names a registry prompt)")
        self._fits_its_kind()
        if len(self.model_dump_json().encode()) > MAX_REQUEST_BYTES:
            raise PydanticCustomError("too_large", "a job request must be at most {limit} bytes as JSON (UTF-8)",
                                      {"limit": MAX_REQUEST_BYTES})
        return self

    def _fits_its_kind(self) -> None:
        """The fields a job of its kind takes: what another kind's job would need is refused, not ignored."""
        texts = isinstance(self.input, list) and all(isinstance(item, str) for item in self.input)
        allowed = {"text": {"instructions", "max_output_tokens", "temperature", "stream", "response_format", "prompt"},
                   "embedding": {"dimensions"}, "image": {"size", "n"}, "ingest": set(),
                   "answer": {"max_output_tokens", "temperature", "stream"}}[self.kind]
        extra = sorted(name for name in ("instructions", "max_output_tokens", "temperature", "response_format",
                                         "prompt", "dimensions", "size", "n")
                       if name not in allowed and getattr(self, name) is not None)
        if self.stream and self.kind not in ("text", "answer"):
            extra.append("stream")
        if (self.collection is None) == (self.kind in COLLECTION_KINDS):
            raise PydanticCustomError("kind_mismatch", "ingest and answer jobs are made by /v1/collections (adding "
                                      "documents, searching with generate: true), not submitted")
        if extra:
            raise PydanticCustomError("kind_mismatch", "{fields} cannot be set on {kind} job",
                                      {"fields": ", ".join(extra), "kind": f"an {self.kind}" if self.kind != "text"
                                       else "a text"})
        if self.kind == "text" and texts:
            raise PydanticCustomError("kind_mismatch", "a text job's input is a string or a list of messages "
                                      "(each with role and content); a list of strings is an embedding job's")
        if self.kind == "embedding" and self.input is not None and not (isinstance(self.input, str) or texts):
            raise PydanticCustomError("kind_mismatch", "an embedding job's input is a string or a list of strings")
        if self.kind == "image" and not (isinstance(self.input, str) and len(self.input) <= MAX_IMAGE_PROMPT_CHARS):
            raise PydanticCustomError("kind_mismatch", "an image job's input is the image's description: a string "
                                      "of at most {limit} characters", {"limit": MAX_IMAGE_PROMPT_CHARS})

    @property
    def texts(self) -> list[str]:
        """An embedding job's texts."""
        return [self.input] if isinstance(self.input, str) else [str(item) for item in self.input or []]

    @property
    def input_messages(self) -> list[dict[str, Any]]:
        """The input as chat messages: a text (or each text of a list) as a user message."""
        if isinstance(self.input, str):
            return [{"role": "user", "content": self.input}]
        return [{"role": "user", "content": m} if isinstance(m, str) else m.model_dump() for m in self.input or []]


class Usage(Model):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    # Counted by aijobs' tokenizer, not reported by the provider: a call stopped by a cancel (aijobs/tokens.py).
    estimated: bool = False
    images: int | None = Field(default=None, exclude_if=lambda value: value is None)  # an image job's images

    def __add__(self, other: Usage) -> Usage:
        images = None if self.images is None and other.images is None else (self.images or 0) + (other.images or 0)
        return Usage(input_tokens=self.input_tokens + other.input_tokens,
                     output_tokens=self.output_tokens + other.output_tokens,
                     total_tokens=self.total_tokens + other.total_tokens,
                     estimated=self.estimated or other.estimated, images=images)


class Reservation(Model):
    """What a job reserved at admission (aijobs/rates.py): tokens in its tenant's minute, its estimated cost in the
    day's spend. Its end settles them."""

    day: str  # the UTC day (YYYY-MM-DD) and the minute of that day (0-1439) whose window holds them
    minute: int
    tokens: int
    cost_usd: Decimal = Decimal(0)  # held in that day's spend until the job ends


class StatusDetails(Model):
    """Why a queued job waits: a limit deferred it (``on_limit: "defer"``), and when it may start."""

    reason: Literal["tokens_per_minute", "daily_budget"]
    not_before: int = Field(description="Unix seconds: the job starts once this time is reached and the limit allows")


class Progress(Model):
    """How far a running job's model call has got: the output so far is flushed to the job's output log."""

    output_tokens: int = 0  # streamed pieces so far (one a token, as providers stream)
    output_chars: int = 0
    elapsed_ms: int = 0


class Job(Model):
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
    batch_id: str | None = None  # set on the jobs POST /v1/jobs/batch makes (models/batches.py)
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
    # When someone last looked at it running (GET, a stream): its worker flushes a job's output as it comes while
    # someone looks (a ``stream: true`` job's always). Unix seconds.
    watched_at: int | None = None
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
    # An embedding or image job's output: its files in the results bucket (the vectors; the images), and the
    # vectors' length.
    output_files: list[str] | None = None
    output_dimensions: int | None = None
    invalid_outputs: int = 0  # attempts whose output did not match the job's response_format

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

    def output(self, link: Callable[[str], FileLink] | None = None) -> JobOutputs | None:
        """The job's output as the API shows it; ``link`` makes a file's URL (an embedding or image job's)."""
        if self.output_files:
            if link is None:
                return None
            links = [link(key) for key in self.output_files]
            expires_at = min(item.expires_at for item in links)
            if self.request.kind == "embedding":
                return EmbeddingOutput(url=links[0].url, dimensions=self.output_dimensions or 0,
                                       count=len(self.request.texts), expires_at=expires_at)
            return ImageOutput(images=[ImageFile(url=item.url) for item in links], expires_at=expires_at)
        if self.output_text is None:
            return None
        if self.request.kind == "answer" and self.request.collection is not None:
            return AnswerOutput.of(self.output_text, self.request.collection.sources)
        if self.request.kind == "ingest":
            with contextlib.suppress(ValueError):
                return IngestOutput.model_validate_json(self.output_text)
            return None
        parsed = None
        if self.request.response_format is not None and self.status is JobStatus.completed:
            with contextlib.suppress(ValueError):  # checked by the worker; a deleted content reads as none
                parsed = json.loads(self.output_text)
        return JobOutput(text=self.output_text, parsed=parsed)

    def to_public(self, *, stream_base: str | None = None,
                  link: Callable[[str], FileLink] | None = None) -> JobOut:
        """As the API shows it; ``stream_base``: the URL of the front that streams (the job then names its stream);
        ``link``: makes the URL of an output file (presigned, for a while)."""
        return JobOut(
            id=self.id,
            status=self.status,
            model=self.model,
            created_at=self.created_at,
            started_at=self.started_at,
            completed_at=self.completed_at,
            kind=self.request.kind,
            output=self.output(link),
            usage=self.usage,
            cost_usd=float(self.cost_usd) if self.cost_usd is not None else None,
            price_known=self.price_known if self.cost_usd is not None else None,
            error=self.error,
            attempt=self.attempt,
            metadata=self.request.metadata,
            priority=self.request.priority,
            schedule_id=self.schedule_id,
            batch_id=self.batch_id,
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


class FileLink(NamedTuple):
    url: str
    expires_at: int


class JobOutput(Model):
    """A text job's output; with a ``response_format``, ``parsed`` is the output as JSON (checked against the
    schema)."""

    text: str
    parsed: Any = None


class EmbeddingOutput(Model):
    """An embedding job's vectors, in a file: one JSON line per text, in order, as OpenAI's embeddings API answers
    each (``{"object": "embedding", "index", "embedding": [floats]}``)."""

    url: str = Field(description="A presigned URL of the vectors' file, valid until expires_at")
    dimensions: int
    count: int
    format: Literal["jsonl"] = "jsonl"
    expires_at: int = Field(description="Unix seconds: when url stops working (read the job again for a new one)")


class ImageFile(Model):
    url: str


class ImageOutput(Model):
    """An image job's PNG images, each at a presigned URL."""

    images: list[ImageFile]
    expires_at: int = Field(description="Unix seconds: when the urls stop working (read the job again for new ones)")


class Citation(Model):
    marker: int = Field(description="How the answer cites it: [marker]")
    chunk_id: str
    document_id: str


# [1], [2] (or [1, 2]) in an answer: the sources it was given, numbered from 1
_CITATION = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")


class AnswerOutput(Model):
    """An answer job's output: the model's answer, the chunks it cites (by their numbers in the answer), and every
    chunk it was given, best first."""

    answer: str
    citations: list[Citation]
    chunks: list[ScoredChunk]

    @classmethod
    def of(cls, answer: str, sources: list[ScoredChunk]) -> AnswerOutput:
        cited: dict[int, Citation] = {}
        for group in _CITATION.findall(answer):
            for marker in (int(n) for n in group.split(",")):
                if 1 <= marker <= len(sources) and marker not in cited:
                    source = sources[marker - 1]
                    cited[marker] = Citation(marker=marker, chunk_id=source.chunk_id, document_id=source.document_id)
        return cls(answer=answer, citations=list(cited.values()), chunks=sources)


class IndexedDocument(Model):
    id: str
    status: Literal["ready", "failed", "deleted"]
    chunk_count: int = 0
    error: ErrorDetail | None = None


class IngestOutput(Model):
    """An ingest job's output: what became of each of its documents."""

    documents: list[IndexedDocument]


JobOutputs = JobOutput | EmbeddingOutput | ImageOutput | AnswerOutput | IngestOutput


class JobOut(Model):
    """A job as ``GET /v1/jobs/{id}`` answers it; timestamps are unix seconds."""

    id: str
    object: Literal["job"] = "job"
    status: JobStatus
    model: str
    kind: JobKind = "text"
    created_at: int
    started_at: int | None
    completed_at: int | None
    output: JobOutputs | None
    usage: Usage | None
    cost_usd: float | None
    price_known: bool | None = None  # false: cost_usd is at the fallback price (the model's price is unknown)
    error: ErrorDetail | None
    attempt: int
    metadata: dict[str, str]
    priority: Priority = "normal"  # its request's lane
    schedule_id: str | None = None
    batch_id: str | None = None  # the batch it was submitted in (POST /v1/jobs/batch)
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


class JobList(Model):
    object: Literal["list"] = "list"
    data: list[JobOut]
    next_cursor: str | None


class JobRequestOut(Model):
    """``GET /v1/jobs/{id}/request``: the body the job was made from."""

    id: str
    object: Literal["job.request"] = "job.request"
    content_deleted_at: int | None = None  # when its input and instructions were deleted
    request: dict[str, Any]


class BatchRequest(Model):
    model_config = ConfigDict(extra="forbid")

    # Items are validated one by one so that one bad item does not sink the batch.
    jobs: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_BATCH)]
    batch_id: Annotated[str | None, Field(pattern=BATCH_ID_PATTERN, description=(
        "The batch to add these jobs to (a chunk of a larger submit); none: a new batch is made"))] = None


class BatchItemResult(Model):
    id: str | None = None
    status: JobStatus | None = None
    error: ErrorDetail | None = None


class BatchResponse(Model):
    object: Literal["list"] = "list"
    batch_id: str = Field(description="The batch the jobs are in (GET /v1/batches/{id})")
    data: list[BatchItemResult]


class StatusRequest(Model):
    model_config = ConfigDict(extra="forbid")

    ids: Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]],
                   Field(min_length=1, max_length=MAX_BATCH)]


class JobStatusItem(Model):
    id: str
    status: JobStatus | Literal["not_found"]


class StatusResponse(Model):
    data: list[JobStatusItem]
