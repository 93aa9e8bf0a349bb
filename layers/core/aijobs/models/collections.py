"""Collections: a tenant's named sets of documents, chunked and embedded for search with sources."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Self

from pydantic import ConfigDict, Field, field_validator, model_validator

from aijobs.models.common import ErrorDetail, Model, unicode_text
from aijobs.models.jobs import JobOut, ScoredChunk, Usage
from aijobs.models.prompts import ModelName

MAX_METADATA_KEYS = 16


class Chunking(Model):
    """How a collection's documents are cut into chunks, in tokens of the embedding model's tokenizer."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: Annotated[int, Field(ge=64, le=2048, description="The most tokens in a chunk")] = 512
    overlap_tokens: Annotated[int, Field(ge=0, le=512, description=(
        "Tokens a chunk repeats from the one before it (less than half of max_tokens)"))] = 64

    @model_validator(mode="after")
    def _overlap_is_less_than_half(self) -> Self:
        if self.overlap_tokens * 2 >= self.max_tokens:
            raise ValueError("chunking.overlap_tokens must be less than half of chunking.max_tokens")
        return self


Metadata = Annotated[dict[Annotated[str, Field(min_length=1, max_length=64)],
                          Annotated[str, Field(max_length=512)]], Field(max_length=MAX_METADATA_KEYS)]


class CollectionRequest(Model):
    """The body of ``POST /v1/collections``."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=128)]
    embedding_model: ModelName | None = Field(default=None, description=(
        "The model that embeds its documents and queries (default: the stack's AIJOBS_EMBEDDING_MODEL)"))
    chunking: Chunking = Field(default_factory=Chunking)
    metadata: Metadata = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name_is_text(cls, value: str) -> str:
        return unicode_text(value)

    @field_validator("metadata")
    @classmethod
    def _metadata_is_text(cls, value: dict[str, str]) -> dict[str, str]:
        for text in (*value, *value.values()):
            unicode_text(text)
        return value


class Collection(Model):
    """A collection as stored (collections.py); its counts are kept by its documents' writers."""

    model_config = ConfigDict(extra="ignore")  # the item also holds its keys

    id: str
    tenant: str
    name: str
    embedding_model: str
    chunking: Chunking
    metadata: dict[str, str] = Field(default_factory=dict)
    created_at: int
    document_count: int = 0
    chunk_count: int = 0

    def to_public(self) -> CollectionOut:
        return CollectionOut(**self.model_dump(exclude={"tenant"}))


class CollectionOut(Model):
    id: str
    object: Literal["collection"] = "collection"
    name: str
    embedding_model: str
    chunking: Chunking
    metadata: dict[str, str]
    created_at: int
    document_count: int
    chunk_count: int


class CollectionList(Model):
    object: Literal["list"] = "list"
    data: list[CollectionOut]
    next_cursor: str | None




# --- documents ---------------------------------------------------------------------------------------------------

# A document's text, one request's texts in all (under Lambda's 6 MB request payload, as JSON), documents a request,
# and an S3 object's size: documented in the README.
MAX_DOCUMENT_CHARS = 1_000_000
MAX_DOCUMENTS_CHARS = 4_000_000
MAX_DOCUMENTS = 100
MAX_OBJECT_BYTES = 10 * 1024 * 1024
# A document's metadata is kept on each of its chunks' vectors, filterable: S3 Vectors allows 2 KB of filterable
# metadata a vector, of which the ids take the rest.
MAX_DOCUMENT_METADATA_KEYS = 8
MAX_DOCUMENT_METADATA_BYTES = 1024
METADATA_KEY = r"^[A-Za-z][A-Za-z0-9_]{0,31}$"

DocumentStatus = Literal["queued", "indexing", "ready", "failed"]


class S3Source(Model):
    """An S3 object the stack may read (a bucket the operator listed in DocumentSourceBuckets): UTF-8 text."""

    model_config = ConfigDict(extra="forbid")

    bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    key: Annotated[str, Field(min_length=1, max_length=1024)]


DocumentMetadata = Annotated[dict[Annotated[str, Field(pattern=METADATA_KEY)], Annotated[str, Field(max_length=256)]],
                             Field(max_length=MAX_DOCUMENT_METADATA_KEYS)]


class DocumentInput(Model):
    """One document: its ``text``, or an ``s3`` object to read; ``metadata`` is returned with its chunks and can
    filter a search."""

    model_config = ConfigDict(extra="forbid")

    title: Annotated[str | None, Field(max_length=256)] = None
    text: Annotated[str | None, Field(min_length=1, max_length=MAX_DOCUMENT_CHARS)] = None
    s3: S3Source | None = None
    metadata: DocumentMetadata = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.text is None) == (self.s3 is None):
            raise ValueError("a document has either text or s3, not both")
        if self.text is not None and not unicode_text(self.text).strip():
            raise ValueError("a document's text must not be blank")
        for text in (*self.metadata, *self.metadata.values(), self.title or ""):
            unicode_text(text)
        if len(json.dumps(self.metadata, ensure_ascii=False).encode()) > MAX_DOCUMENT_METADATA_BYTES:
            raise ValueError(f"a document's metadata must be at most {MAX_DOCUMENT_METADATA_BYTES} bytes as JSON")
        return self


class DocumentsRequest(Model):
    """The body of ``POST /v1/collections/{id}/documents``: 1-100 documents, indexed by one job."""

    model_config = ConfigDict(extra="forbid")

    documents: Annotated[list[DocumentInput], Field(min_length=1, max_length=MAX_DOCUMENTS)]

    @model_validator(mode="after")
    def _fits_a_request(self) -> Self:
        if sum(len(d.text or "") for d in self.documents) > MAX_DOCUMENTS_CHARS:
            raise ValueError(f"the documents' texts must be at most {MAX_DOCUMENTS_CHARS} characters in all")
        return self


class Document(Model):
    """A document as stored (collections.py); ``status`` is queued until its job has indexed it (ready) or failed it;
    its text waits in the results bucket (``text_key``) until then."""

    model_config = ConfigDict(extra="ignore")

    id: str
    tenant: str
    collection_id: str
    title: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    s3: S3Source | None = None
    text_key: str | None = None
    chars: int | None = None
    job_id: str
    status: Literal["queued", "ready", "failed"] = "queued"
    chunk_count: int = 0
    pending_chunks: int = 0  # what an attempt put or is putting, before it marks the document ready
    error: ErrorDetail | None = None
    created_at: int
    indexed_at: int | None = None

    def to_public(self, job_status: str | None = None, job_error: ErrorDetail | None = None) -> DocumentOut:
        """As the API shows it; a queued document's status follows its job: indexing while it runs, failed when it
        ended without indexing it."""
        status: DocumentStatus = self.status
        error = self.error
        if self.status == "queued" and job_status == "in_progress":
            status = "indexing"
        elif self.status == "queued" and job_status in ("failed", "cancelled", "completed", None):
            status, error = "failed", job_error or ErrorDetail(
                type="internal", code=f"job_{job_status or 'missing'}",
                message="the job that was to index this document ended without indexing it", retryable=False)
        return DocumentOut(id=self.id, collection_id=self.collection_id, title=self.title, metadata=self.metadata,
                           source="s3" if self.s3 else "text", chars=self.chars, job_id=self.job_id, status=status,
                           chunk_count=self.chunk_count, error=error, created_at=self.created_at,
                           indexed_at=self.indexed_at)


class DocumentOut(Model):
    id: str
    object: Literal["collection.document"] = "collection.document"
    collection_id: str
    title: str | None
    metadata: dict[str, str]
    source: Literal["text", "s3"]
    chars: int | None = Field(description="Its text's length in characters (of an S3 object: once read)")
    job_id: str = Field(description="The job that indexes it (GET /v1/jobs/{id}: poll, stream, cancel)")
    status: DocumentStatus
    chunk_count: int
    error: ErrorDetail | None
    created_at: int
    indexed_at: int | None


class DocumentList(Model):
    object: Literal["list"] = "list"
    data: list[DocumentOut]
    next_cursor: str | None


class DocumentsAdded(Model):
    """``POST /v1/collections/{id}/documents``'s answer: the documents, queued, and the job that indexes them."""

    object: Literal["collection.documents"] = "collection.documents"
    job_id: str
    data: list[DocumentOut]


# --- search ------------------------------------------------------------------------------------------------------

MAX_QUERY_CHARS = 8_000
MAX_TOP_K = 100
FilterValue = str | Annotated[list[Annotated[str, Field(max_length=256)]], Field(min_length=1, max_length=32)]


class SearchRequest(Model):
    """The body of ``POST /v1/collections/{id}/search``."""

    model_config = ConfigDict(extra="forbid")

    query: Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS)]
    top_k: Annotated[int, Field(ge=1, le=MAX_TOP_K, description="How many chunks at most, best first")] = 5
    min_score: Annotated[float | None, Field(ge=-1, le=1, description=(
        "Leave out chunks scoring below it: their cosine similarity to the query, from -1 to 1"))] = None
    filter: Annotated[dict[Annotated[str, Field(pattern=METADATA_KEY)], FilterValue] | None, Field(
        max_length=MAX_DOCUMENT_METADATA_KEYS, description=(
            "Document metadata the chunks' documents must have: a value, or any of a list of values"))] = None
    generate: bool = Field(default=False, description=(
        "Also answer the query from the chunks, citing them: a 202 and a job whose output is {answer, citations, "
        "chunks}"))
    model: ModelName | None = Field(default=None, description="The model that answers (generate: true)")
    max_output_tokens: Annotated[int | None, Field(ge=1, le=128_000)] = None

    @field_validator("query")
    @classmethod
    def _query_is_text(cls, value: str) -> str:
        if not unicode_text(value).strip():
            raise ValueError("must not be blank")
        return value

    @model_validator(mode="after")
    def _answer_fields(self) -> Self:
        if not self.generate and (self.model is not None or self.max_output_tokens is not None):
            raise ValueError("model and max_output_tokens are for generate: true")
        return self


class SearchResult(Model):
    """``POST /v1/collections/{id}/search``'s answer without ``generate``: the chunks, best first."""

    object: Literal["collection.search_result"] = "collection.search_result"
    query_id: str = Field(description="Its entry in the query log (GET /v1/collections/{id}/queries)")
    data: list[ScoredChunk]
    usage: Usage
    cost_usd: float


class SearchJob(Model):
    """``POST /v1/collections/{id}/search``'s answer with ``generate: true``: the chunks now, the answer in a job."""

    object: Literal["collection.search_job"] = "collection.search_job"
    query_id: str
    job: JobOut
    data: list[ScoredChunk]
    usage: Usage
    cost_usd: float


class LoggedChunk(Model):
    chunk_id: str
    score: float


class QueryLogEntry(Model):
    """A search as the query log keeps it (until the job retention ends)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    object: Literal["collection.query"] = "collection.query"
    collection_id: str
    query: str
    top_k: int
    min_score: float | None = None
    filter: dict[str, Any] | None = None
    generate: bool
    chunks: list[LoggedChunk]
    answer_job_id: str | None = Field(default=None, description="The job that answers it (generate: true)")
    latency_ms: int = Field(description="From the request to the chunks, embedding the query included")
    created_at: int


class QueryLog(Model):
    object: Literal["list"] = "list"
    data: list[QueryLogEntry]
    next_cursor: str | None
