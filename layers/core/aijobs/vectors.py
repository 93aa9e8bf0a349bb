"""The vector index of documents' chunks, on Amazon S3 Vectors: one cosine index for every tenant.

Each chunk is one vector, keyed ``<tenant>#<collection_id>#<document_id>#<n>`` (n from 0), so a document's keys
follow from its id and chunk count, and deleting one needs no listing (S3 Vectors cannot list by metadata). Its
metadata holds ``tenant``, ``collection_id``, ``document_id`` and ``chunk`` (filterable) and the chunk's ``text``
(non-filterable: larger, never in a filter). Every query filters on its tenant and collection, so no caller can
reach another tenant's vectors whatever filter it adds.
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from aijobs.errors import AijobsError, InvalidRequest, PayloadTooLarge, ServiceUnavailable

# S3 Vectors' limits: vectors per PutVectors and DeleteVectors call, results per query, a request's payload, a
# vector's metadata in all (filterable and not), its filterable metadata.
WRITE_BATCH = 500
TOP_K_LIMIT = 100
PAYLOAD_BUDGET = 19 * 1024 * 1024  # of the vectors' JSON, under the 20 MiB a request may carry
METADATA_LIMIT = 40 * 1024
FILTERABLE_LIMIT = 2 * 1024
ID_LIMIT = 128  # characters of a tenant, collection or document id: the three stay under 2 KB even in 4-byte UTF-8
TEXT_LIMIT = METADATA_LIMIT - FILTERABLE_LIMIT  # a chunk's text, in UTF-8 bytes


@dataclass(frozen=True, slots=True)
class Chunk:
    """One chunk of a document, embedded: what ``VectorIndex.put`` stores."""

    tenant: str
    collection_id: str
    document_id: str
    n: int  # its place in the document, from 0
    vector: Sequence[float]
    text: str
    metadata: Mapping[str, str] = field(default_factory=dict)  # its document's, filterable as ``m_<key>``


@dataclass(frozen=True, slots=True)
class Match:
    """A chunk found by ``VectorIndex.query``; ``score`` is its cosine similarity to the query, from -1 to 1 (1: the
    same direction), 1 - the cosine distance S3 Vectors answers."""

    key: str
    score: float
    metadata: Mapping[str, Any]

    @property
    def document_id(self) -> str:
        return str(self.metadata["document_id"])

    @property
    def chunk(self) -> int:
        return int(self.metadata["chunk"])

    @property
    def text(self) -> str:
        return str(self.metadata.get("text", ""))

    @property
    def document_metadata(self) -> dict[str, str]:
        return {key.removeprefix(DOCUMENT_METADATA): str(value) for key, value in self.metadata.items()
                if key.startswith(DOCUMENT_METADATA)}


# A document's metadata on its chunks' vectors: under this prefix, apart from the index's own keys
DOCUMENT_METADATA = "m_"


def chunk_key(tenant: str, collection_id: str, document_id: str, n: int) -> str:
    return f"{tenant}#{collection_id}#{document_id}#{n}"


class VectorIndex:
    """Documents' chunks in one S3 Vectors index (a cosine, float32 index of ``dimension``), named by its ARN.

    Examples
    --------
    >>> index = VectorIndex(client=session.client("s3vectors"), index_arn=arn, dimension=1536)  # doctest: +SKIP
    >>> index.put([Chunk("t1", "col_1", "doc_1", 0, vector, "the first chunk's text")])  # doctest: +SKIP
    >>> [m.document_id for m in index.query(question, tenant="t1", collection_id="col_1", top_k=5)]  # doctest: +SKIP
    ['doc_1']
    """

    def __init__(self, *, client: Any, index_arn: str, dimension: int) -> None:
        self._client = client
        self.index_arn = index_arn
        self.dimension = dimension

    def put(self, chunks: Iterable[Chunk]) -> int:
        """Store chunks (a chunk stored again under its key replaces the old one); returns how many were stored.

        Every chunk is checked before the first is written: a bad one raises ``InvalidRequest`` (or
        ``PayloadTooLarge`` for a text over ``TEXT_LIMIT`` bytes) and nothing is stored. Written in calls of at most
        500 vectors and 19 MiB; a failed call leaves the calls before it written (put them again: it is
        idempotent)."""
        vectors = [self._vector(chunk) for chunk in chunks]
        for batch in _batches(vectors):
            self._call("put_vectors", indexArn=self.index_arn, vectors=batch)
        return len(vectors)

    def query(self, vector: Sequence[float], *, tenant: str, collection_id: str, top_k: int,
              filter: Mapping[str, Any] | None = None) -> list[Match]:
        """The ``top_k`` (1-100) chunks of the tenant's collection nearest to ``vector``, most similar first.

        ``filter`` narrows them further with S3 Vectors' operators on filterable metadata (``document_id``,
        ``chunk``); it is joined to the tenant and collection condition, never replaces it."""
        if not 1 <= top_k <= TOP_K_LIMIT:
            raise InvalidRequest(f"top_k must be from 1 to {TOP_K_LIMIT}", code="invalid_top_k")
        scope = [{"tenant": {"$eq": tenant}}, {"collection_id": {"$eq": collection_id}}]
        params = {"indexArn": self.index_arn, "topK": top_k, "queryVector": {"float32": self._data(vector)},
                  "filter": {"$and": [*scope, dict(filter)] if filter else scope},
                  "returnMetadata": True, "returnDistance": True}
        found: list[dict[str, Any]] = []
        while True:  # S3 Vectors may page a query's results (nextToken); the same request, with it, reads on
            answer = self._call("query_vectors", **params)
            found += answer["vectors"]
            if not answer.get("nextToken"):
                break
            params["nextToken"] = answer["nextToken"]
        return [Match(key=v["key"], score=max(-1.0, min(1.0, 1.0 - v["distance"])), metadata=v.get("metadata") or {})
                for v in found]

    def delete_document(self, tenant: str, collection_id: str, document_id: str, chunk_count: int) -> None:
        """Delete a document's chunks 0 to ``chunk_count`` - 1 (keys that do not exist are no error)."""
        _check_ids(tenant, collection_id, document_id)
        keys = [chunk_key(tenant, collection_id, document_id, n) for n in range(chunk_count)]
        for start in range(0, len(keys), WRITE_BATCH):
            self._call("delete_vectors", indexArn=self.index_arn, keys=keys[start:start + WRITE_BATCH])

    def delete_collection(self, tenant: str, collection_id: str, documents: Mapping[str, int]) -> None:
        """Delete every chunk of a collection's documents, given as {document id: chunk count}."""
        for document_id, chunk_count in documents.items():
            self.delete_document(tenant, collection_id, document_id, chunk_count)

    def _vector(self, chunk: Chunk) -> dict[str, Any]:
        _check_ids(chunk.tenant, chunk.collection_id, chunk.document_id)
        if chunk.n < 0:
            raise InvalidRequest("a chunk's number starts at 0", code="invalid_chunk")
        if len(chunk.text.encode()) > TEXT_LIMIT:
            raise PayloadTooLarge(f"a chunk's text is over {TEXT_LIMIT} bytes", code="chunk_too_large")
        return {"key": chunk_key(chunk.tenant, chunk.collection_id, chunk.document_id, chunk.n),
                "data": {"float32": self._data(chunk.vector)},
                "metadata": {"tenant": chunk.tenant, "collection_id": chunk.collection_id,
                             "document_id": chunk.document_id, "chunk": chunk.n, "text": chunk.text,
                             **{DOCUMENT_METADATA + key: value for key, value in chunk.metadata.items()}}}

    def _data(self, vector: Sequence[float]) -> list[float]:
        """The vector as float32 (what S3 Vectors keeps), checked as S3 Vectors checks a cosine index's vectors."""
        if len(vector) != self.dimension:
            raise InvalidRequest(f"a vector must have {self.dimension} dimensions, not {len(vector)}",
                                 code="wrong_dimension")
        try:
            data = array("f", vector)
        except (TypeError, OverflowError):
            raise InvalidRequest("a vector holds numbers only", code="invalid_vector") from None
        if not all(math.isfinite(v) for v in data) or not any(data):
            raise InvalidRequest("a vector must be finite and not all zeros", code="invalid_vector")
        return data.tolist()

    def _call(self, operation: str, **params: Any) -> Any:
        try:
            return getattr(self._client, operation)(**params)
        except ClientError as exc:
            raise _domain_error(exc) from None


def _check_ids(*ids: str) -> None:
    if any(not i or len(i) > ID_LIMIT or "#" in i for i in ids):
        raise InvalidRequest(f"tenant, collection and document ids are 1-{ID_LIMIT} characters without '#'",
                             code="invalid_id")


def _batches(vectors: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """At most ``WRITE_BATCH`` vectors and ``PAYLOAD_BUDGET`` bytes of JSON a batch (500 vectors of 1,536 dimensions
    take about 17 MB with short texts; long texts make batches smaller)."""
    batch: list[dict[str, Any]] = []
    size = 0
    for vector in vectors:
        vector_size = len(json.dumps(vector).encode())
        if batch and (len(batch) == WRITE_BATCH or size + vector_size > PAYLOAD_BUDGET):
            yield batch
            batch, size = [], 0
        batch.append(vector)
        size += vector_size
    if batch:
        yield batch


def _domain_error(exc: ClientError) -> AijobsError:
    """S3 Vectors' error as ours: a refused request is the caller's (its message is not echoed: it may quote
    input), throttling and outages are retryable, anything else (a missing index, no permission) is internal."""
    code = exc.response.get("Error", {}).get("Code", "")
    if code == "ValidationException":
        return InvalidRequest("the vector index refused the request (a filter or vector it does not accept)",
                              code="invalid_vector_request")
    if code in ("TooManyRequestsException", "ServiceUnavailableException", "RequestTimeoutException",
                "InternalServerException"):
        return ServiceUnavailable("the vector index is busy; try again", code="vector_index_unavailable",
                                  retry_after=1)
    return AijobsError(f"the vector index failed ({code or 'unknown error'})", code="vector_index_error")
