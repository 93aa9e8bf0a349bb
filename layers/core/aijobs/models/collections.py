"""Collections: a tenant's named sets of documents, chunked and embedded for search with sources."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aijobs.models.common import unicode_text
from aijobs.models.prompts import ModelName

MAX_METADATA_KEYS = 16


class Chunking(BaseModel):
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


class CollectionRequest(BaseModel):
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


class Collection(BaseModel):
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


class CollectionOut(BaseModel):
    id: str
    object: Literal["collection"] = "collection"
    name: str
    embedding_model: str
    chunking: Chunking
    metadata: dict[str, str]
    created_at: int
    document_count: int
    chunk_count: int


class CollectionList(BaseModel):
    object: Literal["list"] = "list"
    data: list[CollectionOut]
    next_cursor: str | None


