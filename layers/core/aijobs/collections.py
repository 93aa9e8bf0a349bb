"""Collections for search with sources: a tenant's named sets of documents, each with its embedding model and
chunking, and the one owner of their items on the tenant's partition (dynamo.py): the collection
(``COLLECTION#<id>``), its documents (``DOC#<collection id>#<id>``) and its query log (``QUERY#<collection id>#<id>``).
Deleting a tenant deletes them with it (and their chunks: ``delete``), and another tenant's collection is not there
for this one (404, never 403).

Documents are indexed by an ingest job (documents.py, in the worker): their texts wait in the results bucket until
then. A search embeds its query here, at once, and asks the vector index (vectors.py) for the nearest chunks; with
``generate`` an answer job (the worker, as any text job) answers from them, citing them.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from aijobs.clock import Clock, system_clock
from aijobs.dynamo import (
    COLLECTION_PREFIX,
    Page,
    collection_key,
    conditional,
    document_key,
    document_prefix,
    query_index,
    query_log_key,
    query_log_prefix,
    tenant_partition,
    to_attributes,
)
from aijobs.errors import AijobsError, InvalidRequest, NotFound, PayloadTooLarge
from aijobs.ids import new_collection_id, new_document_id, new_job_id, new_query_id
from aijobs.models.collections import (
    MAX_DOCUMENT_CHARS,
    MAX_OBJECT_BYTES,
    Collection,
    CollectionRequest,
    Document,
    DocumentsRequest,
    LoggedChunk,
    QueryLogEntry,
    SearchRequest,
)
from aijobs.models.common import ErrorDetail
from aijobs.models.jobs import CollectionTask, Job, JobRequest, ScoredChunk, Usage
from aijobs.observability import logger
from aijobs.pricing import estimate_cost

if TYPE_CHECKING:
    from aijobs.jobs import JobService
    from aijobs.providers import ModelProvider
    from aijobs.store import OutputBlobs
    from aijobs.usage import UsageStore
    from aijobs.vectors import VectorIndex

# An answer job reads the best chunks found, up to this many characters of their texts in all (about 6,000
# tokens): the rest are in the search's answer and the log, not in the model's prompt.
ANSWER_CONTEXT_CHARS = 24_000
# An ingest job may take as long as a job may (its documents are chunked and embedded one after another).
INGEST_TIMEOUT_S = 840


@dataclass(frozen=True)
class Search:
    """A search's outcome: its log entry's id, the chunks, what embedding the query used and cost, and the answer
    job (``generate``)."""

    query_id: str
    chunks: list[ScoredChunk]
    usage: Usage
    cost_usd: Decimal
    job: Job | None = None


@dataclass
class CollectionService:
    table: Any
    default_embedding_model: str
    # What documents and searches need, made when first used (a route that only lists collections loads none):
    # the vector index, the model provider (embeds queries), the job service (ingest and answer jobs), an S3 client
    # (documents named by an S3 object); the results bucket keeps documents' texts until they are indexed.
    vectors: Callable[[], VectorIndex]
    provider: Callable[[], ModelProvider]
    jobs: Callable[[], JobService]
    s3: Callable[[], Any]
    blobs: OutputBlobs | None
    clock: Clock = system_clock
    usage: UsageStore | None = None
    retention_s: int = 7 * 86_400  # the query log's, as the jobs'
    source_buckets: frozenset[str] = field(default_factory=frozenset)  # the buckets documents may name

    # --- collections -------------------------------------------------------------------------------

    def create(self, *, tenant: str, request: CollectionRequest) -> Collection:
        collection = Collection(id=new_collection_id(), tenant=tenant, name=request.name,
                                embedding_model=request.embedding_model or self.default_embedding_model,
                                chunking=request.chunking, metadata=request.metadata, created_at=int(self.clock()))
        self.table.put_item(Item={**collection_key(tenant, collection.id), **to_attributes(collection)})
        logger.info("collection created", extra={"collection_id": collection.id, "tenant": tenant})
        return collection

    def find(self, tenant: str, collection_id: str) -> Collection | None:
        item = (self.table.get_item(Key=collection_key(tenant, collection_id), ConsistentRead=True).get("Item")
                if collection_id.startswith("col_") else None)
        return Collection.model_validate(item) if item else None

    def get(self, *, tenant: str, collection_id: str) -> Collection:
        if (collection := self.find(tenant, collection_id)) is None:
            raise NotFound("no such collection", code="collection_not_found")
        return collection

    def list(self, *, tenant: str, limit: int, cursor: str | None) -> Page[Collection]:
        """A tenant's collections, newest first."""
        page = query_index(self.table, index=None, partition=tenant_partition(tenant), sort_prefix=COLLECTION_PREFIX,
                           limit=limit, cursor=cursor)
        return Page([Collection.model_validate(item) for item in page.items], page.next_cursor)

    def delete(self, *, tenant: str, collection_id: str) -> None:
        """Delete a collection: its documents' chunks and items, their waiting texts, its query log, then itself (a
        deletion that fails midway is finished by deleting again). An ingest job still running finds it gone and
        deletes the chunks it put."""
        self.get(tenant=tenant, collection_id=collection_id)
        for prefix, documents in ((document_prefix(collection_id), True), (query_log_prefix(collection_id), False)):
            cursor: str | None = None
            with self.table.batch_writer() as batch:
                while True:
                    page = query_index(self.table, index=None, partition=tenant_partition(tenant),
                                       sort_prefix=prefix, limit=100, cursor=cursor)
                    for item in page.items:
                        if documents:
                            self._drop_document(Document.model_validate(item))
                        batch.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
                    if (cursor := page.next_cursor) is None:
                        break
        self.table.delete_item(Key=collection_key(tenant, collection_id))
        logger.info("collection deleted", extra={"collection_id": collection_id, "tenant": tenant})

    def delete_all(self, tenant: str) -> None:
        """Every collection of a tenant (a tenant deleted): their chunks leave the vector index. One pass over the
        list (a list read again could still show one deleted a moment ago)."""
        cursor: str | None = None
        while True:
            page = self.list(tenant=tenant, limit=100, cursor=cursor)
            for collection in page.items:
                with contextlib.suppress(NotFound):  # deleted meanwhile
                    self.delete(tenant=tenant, collection_id=collection.id)
            if (cursor := page.next_cursor) is None:
                return

    # --- documents ---------------------------------------------------------------------------------

    def add_documents(self, *, tenant: str, collection_id: str,
                      request: DocumentsRequest) -> tuple[Job, builtins.list[Document]]:
        """Queue documents to be indexed by one ingest job: their texts are kept, their items written, then the job
        submitted; if the job is refused (a limit), nothing stays."""
        collection = self.get(tenant=tenant, collection_id=collection_id)
        for item in request.documents:
            if item.s3 is not None and item.s3.bucket not in self.source_buckets:
                raise InvalidRequest(f"the stack does not read documents from bucket {item.s3.bucket!r} (the "
                                     "operator lists the buckets it may read: DocumentSourceBuckets)",
                                     code="source_not_allowed")
        job_id, now = new_job_id(), int(self.clock())
        documents = [Document(id=new_document_id(), tenant=tenant, collection_id=collection_id, title=item.title,
                              metadata=item.metadata, s3=item.s3, chars=len(item.text) if item.text else None,
                              job_id=job_id, created_at=now) for item in request.documents]
        documents = [d.model_copy(update={"text_key": _text_key(d)}) if item.text is not None else d
                     for d, item in zip(documents, request.documents, strict=True)]
        try:
            for document, item in zip(documents, request.documents, strict=True):
                if item.text is not None:
                    self._blobs().put(_text_key(document), item.text)
            with self.table.batch_writer() as batch:
                for document in documents:
                    batch.put_item(Item={**document_key(tenant, collection_id, document.id),
                                         **to_attributes(document)})
            job_request = JobRequest(kind="ingest", model=collection.embedding_model, timeout_s=INGEST_TIMEOUT_S,
                                     collection=CollectionTask(collection_id=collection_id,
                                                               document_ids=[d.id for d in documents]))
            job = self.jobs().submit_job(tenant=tenant, request=job_request, job_id=job_id, internal=True)
        except BaseException:
            for document in documents:
                self._drop_document(document)
                self.table.delete_item(Key=document_key(tenant, collection_id, document.id))
            raise
        logger.info("documents queued", extra={"collection_id": collection_id, "tenant": tenant, "job_id": job.id,
                                               "documents": len(documents)})
        return job, documents

    def get_document(self, tenant: str, collection_id: str, document_id: str) -> Document | None:
        item = (self.table.get_item(Key=document_key(tenant, collection_id, document_id),
                                    ConsistentRead=True).get("Item") if document_id.startswith("doc_") else None)
        return Document.model_validate(item) if item else None

    def document(self, *, tenant: str, collection_id: str, document_id: str) -> Document:
        self.get(tenant=tenant, collection_id=collection_id)
        if (document := self.get_document(tenant, collection_id, document_id)) is None:
            raise NotFound("no such document", code="document_not_found")
        return document

    def list_documents(self, *, tenant: str, collection_id: str, limit: int,
                       cursor: str | None) -> Page[Document]:
        """A collection's documents, newest first."""
        self.get(tenant=tenant, collection_id=collection_id)
        page = query_index(self.table, index=None, partition=tenant_partition(tenant),
                           sort_prefix=document_prefix(collection_id), limit=limit, cursor=cursor)
        return Page([Document.model_validate(item) for item in page.items], page.next_cursor)

    def delete_document(self, *, tenant: str, collection_id: str, document_id: str) -> None:
        """Delete a document and its chunks: it is gone from searches at once. One being indexed is deleted too: its
        job finds it gone and deletes the chunks it put."""
        document = self.document(tenant=tenant, collection_id=collection_id, document_id=document_id)
        self._drop_document(document)
        key = document_key(tenant, collection_id, document_id)
        if document.status != "ready":
            self.table.delete_item(Key=key)
        else:  # its counts leave its collection's with it
            try:
                self.table.meta.client.transact_write_items(TransactItems=[
                    {"Delete": {"TableName": self.table.name, "Key": key,
                                "ConditionExpression": "attribute_exists(pk)"}},
                    {"Update": {"TableName": self.table.name, "Key": collection_key(tenant, collection_id),
                                "UpdateExpression": "ADD document_count :minus_one, chunk_count :minus_chunks",
                                "ConditionExpression": "attribute_exists(pk)",
                                "ExpressionAttributeValues": {":minus_one": -1,
                                                              ":minus_chunks": -document.chunk_count}}},
                ])
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise  # else deleted meanwhile, by another request
        logger.info("document deleted", extra={"collection_id": collection_id, "document_id": document_id})

    def _drop_document(self, document: Document) -> None:
        """A document's chunks (those of an attempt that put some and died too), its waiting text (not its item)."""
        if count := max(document.chunk_count, document.pending_chunks):
            self.vectors().delete_document(document.tenant, document.collection_id, document.id, count)
        if document.text_key is not None and self.blobs is not None:
            self.blobs.delete(document.text_key)

    # What the worker's ingest job asks (documents.py).

    def document_text(self, document: Document) -> str:
        """A queued document's text: kept by the API, or its S3 object; ``InvalidRequest`` when it cannot be read
        as UTF-8 text within the limits."""
        if document.text_key is not None:
            return self._blobs().get(document.text_key)
        assert document.s3 is not None
        try:
            answer = self.s3().get_object(Bucket=document.s3.bucket, Key=document.s3.key)
        except ClientError:
            raise InvalidRequest("the document's S3 object could not be read (missing, or not readable by the stack)",
                                 code="document_unreadable") from None
        if int(answer.get("ContentLength") or 0) > MAX_OBJECT_BYTES:
            answer["Body"].close()
            raise PayloadTooLarge(f"the document's S3 object is over {MAX_OBJECT_BYTES} bytes",
                                  code="document_too_large")
        try:
            text = answer["Body"].read(MAX_OBJECT_BYTES + 1).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest("the document's S3 object is not UTF-8 text", code="document_not_text") from None
        if len(text) > MAX_DOCUMENT_CHARS:
            raise PayloadTooLarge(f"the document's text is over {MAX_DOCUMENT_CHARS} characters",
                                  code="document_too_large")
        if not text.strip():
            raise InvalidRequest("the document's S3 object holds no text", code="document_empty")
        return text

    def mark_pending(self, document: Document, chunk_count: int) -> bool:
        """Record how many chunks an attempt is about to put (``pending_chunks``: a deletion deletes that many);
        False if the document was deleted meanwhile."""
        return conditional(self.table.update_item, Key=document_key(document.tenant, document.collection_id,
                                                                     document.id),
                           UpdateExpression="SET pending_chunks = :n",
                           ConditionExpression="attribute_exists(pk) AND #status = :queued",
                           ExpressionAttributeNames={"#status": "status"},
                           ExpressionAttributeValues={":n": chunk_count, ":queued": "queued"}) is not None

    def mark_indexed(self, document: Document, *, chunk_count: int, chars: int) -> bool:
        """The document ready, and counted into its collection, in one transaction; False if it (or its collection)
        was deleted meanwhile. A document ready already is left as it is (True)."""
        tenant, collection_id = document.tenant, document.collection_id
        try:
            self.table.meta.client.transact_write_items(TransactItems=[
                {"Update": {"TableName": self.table.name, "Key": document_key(tenant, collection_id, document.id),
                            "UpdateExpression": "SET #status = :ready, chunk_count = :chunks, chars = :chars, "
                                                "indexed_at = :now REMOVE text_key",
                            "ConditionExpression": "attribute_exists(pk) AND #status = :queued",
                            "ExpressionAttributeNames": {"#status": "status"},
                            "ExpressionAttributeValues": {":ready": "ready", ":queued": "queued",
                                                          ":chunks": chunk_count, ":chars": chars,
                                                          ":now": int(self.clock())}}},
                {"Update": {"TableName": self.table.name, "Key": collection_key(tenant, collection_id),
                            "UpdateExpression": "ADD document_count :one, chunk_count :chunks",
                            "ConditionExpression": "attribute_exists(pk)",
                            "ExpressionAttributeValues": {":one": 1, ":chunks": chunk_count}}},
            ])
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            current = self.get_document(tenant, collection_id, document.id)
            return current is not None and current.status == "ready" and self.find(tenant, collection_id) is not None
        if document.text_key is not None and self.blobs is not None:
            self.blobs.delete(document.text_key)  # its text lives on in its chunks
        return True

    def mark_failed(self, document: Document, error: ErrorDetail) -> None:
        """The document failed (unless deleted meanwhile, or marked already)."""
        conditional(
            self.table.update_item, Key=document_key(document.tenant, document.collection_id, document.id),
            UpdateExpression="SET #status = :failed, #error = :error",
            ConditionExpression="attribute_exists(pk) AND #status = :queued",
            ExpressionAttributeNames={"#status": "status", "#error": "error"},
            ExpressionAttributeValues={":failed": "failed", ":queued": "queued", ":error": to_attributes(error)})

    # --- search ------------------------------------------------------------------------------------

    async def search(self, *, tenant: str, collection_id: str, request: SearchRequest) -> Search:
        """The chunks nearest the query (at most ``top_k``, none under ``min_score``), best first, logged; with
        ``generate``, an answer job submitted on them. The query's embedding is counted in the tenant's usage."""
        started = time.monotonic()
        collection = await asyncio.to_thread(self.get, tenant=tenant, collection_id=collection_id)
        vectors = self.vectors()
        made = await self.provider().embed([request.query], model=collection.embedding_model,
                                            dimensions=vectors.dimension)
        matches = await asyncio.to_thread(vectors.query, made.vectors[0], tenant=tenant, collection_id=collection_id,
                                          top_k=request.top_k, filter=_metadata_filter(request.filter))
        chunks = [ScoredChunk(chunk_id=f"{m.document_id}:{m.chunk}", document_id=m.document_id, text=m.text,
                              score=round(m.score, 6), metadata=m.document_metadata)
                  for m in matches if request.min_score is None or m.score >= request.min_score]
        latency_ms = int((time.monotonic() - started) * 1000)
        price = estimate_cost(made.model or collection.embedding_model, input_tokens=made.usage.input_tokens,
                              output_tokens=0)
        if self.usage is not None:
            await asyncio.to_thread(self.usage.record_job_end, tenant, input_tokens=made.usage.input_tokens,
                                    output_tokens=0, cost_usd=price.cost_usd, reservation=None)
        query_id = new_query_id()
        job = None
        if request.generate:
            job = await asyncio.to_thread(self._answer, tenant, collection_id, query_id, request, chunks)
        entry = QueryLogEntry(id=query_id, collection_id=collection_id, query=request.query, top_k=request.top_k,
                              min_score=request.min_score, filter=request.filter, generate=request.generate,
                              chunks=[LoggedChunk(chunk_id=c.chunk_id, score=c.score) for c in chunks],
                              answer_job_id=job.id if job else None, latency_ms=latency_ms,
                              created_at=int(self.clock()))
        await asyncio.to_thread(self.table.put_item, Item={
            **query_log_key(tenant, collection_id, query_id), **to_attributes(entry),
            "expires_at": int(self.clock()) + self.retention_s})
        return Search(query_id=query_id, chunks=chunks, usage=made.usage, cost_usd=price.cost_usd, job=job)

    def _answer(self, tenant: str, collection_id: str, query_id: str, request: SearchRequest,
                chunks: builtins.list[ScoredChunk]) -> Job:
        sources: builtins.list[ScoredChunk] = []
        budget = ANSWER_CONTEXT_CHARS
        for chunk in chunks:  # best first, while they fit
            if len(chunk.text) > budget:
                break
            sources.append(chunk)
            budget -= len(chunk.text)
        answer = JobRequest(kind="answer", model=request.model, input=request.query,
                            max_output_tokens=request.max_output_tokens,
                            collection=CollectionTask(collection_id=collection_id, query_id=query_id, sources=sources))
        return self.jobs().submit_job(tenant=tenant, request=answer, internal=True)

    def list_queries(self, *, tenant: str, collection_id: str, limit: int, cursor: str | None) -> Page[QueryLogEntry]:
        """A collection's query log, newest first; an entry whose retention has ended is gone (TTL, or left out)."""
        self.get(tenant=tenant, collection_id=collection_id)
        page = query_index(self.table, index=None, partition=tenant_partition(tenant),
                           sort_prefix=query_log_prefix(collection_id), limit=limit, cursor=cursor)
        now = self.clock()
        return Page([QueryLogEntry.model_validate(item) for item in page.items
                     if int(item.get("expires_at", now + 1)) > now], page.next_cursor)

    # --- parts -------------------------------------------------------------------------------------

    def _blobs(self) -> OutputBlobs:
        if self.blobs is None:
            raise AijobsError("no results bucket is configured (AIJOBS_RESULTS_BUCKET)", code="results_unavailable")
        return self.blobs


def _text_key(document: Document) -> str:
    """Where a document's text waits to be indexed (under outputs/, which the results bucket's lifecycle expires)."""
    return f"outputs/documents/{document.tenant}/{document.collection_id}/{document.id}.txt"


def _metadata_filter(filter: dict[str, Any] | None) -> dict[str, Any] | None:
    """A search's document metadata filter as S3 Vectors' (on the chunks' ``m_<key>`` metadata): a value is
    ``$eq``, a list ``$in``."""
    from aijobs.vectors import DOCUMENT_METADATA

    if not filter:
        return None
    conditions = [{DOCUMENT_METADATA + key: {"$in": value} if isinstance(value, list) else {"$eq": value}}
                  for key, value in filter.items()]
    return conditions[0] if len(conditions) == 1 else {"$and": conditions}
