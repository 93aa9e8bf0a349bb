"""Indexing a collection's documents: what an ingest job does in the worker.

Each document of the job is read (its text as the API kept it, or the S3 object it names), cut into chunks by
semchunk (at sentence and paragraph boundaries, ``chunking.max_tokens`` each, counted by the embedding model's
tokenizer, ``chunking.overlap_tokens`` repeated), embedded in calls of ``embed_batch`` chunks, and put in the vector
index; then marked ready, with its collection's counts, in one transaction (collections.py). Every step can run
again: a document that is ready already is skipped, a chunk put again replaces itself, and a document deleted while
it was indexed has its chunks deleted again here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aijobs.errors import AijobsError, ProviderError
from aijobs.models.jobs import IndexedDocument, IngestOutput, Job, Usage
from aijobs.observability import count, logger
from aijobs.tokens import count_tokens
from aijobs.vectors import Chunk

if TYPE_CHECKING:
    from aijobs.collections import CollectionService
    from aijobs.models.collections import Chunking, Document
    from aijobs.providers import ModelProvider
    from aijobs.vectors import VectorIndex


@dataclass(frozen=True)
class Indexed:
    """What an ingest job did: each document's fate, the embedding calls' usage, and which model answered them."""

    output: IngestOutput
    usage: Usage
    model: str
    backend: str | None = None
    fallback_model: str | None = None


def chunk_text(text: str, *, model: str, chunking: Chunking) -> list[str]:
    """The text's chunks, in order: at most ``chunking.max_tokens`` tokens each, the next repeating about
    ``overlap_tokens`` of the one before; blank ones left out."""
    from semchunk.semchunk import chunk  # ~0.4 s to import: only an ingest job needs it

    pieces = chunk(text, chunk_size=chunking.max_tokens, token_counter=lambda s: count_tokens(model, s),
                            overlap=chunking.overlap_tokens or None)
    return [piece for piece in pieces if isinstance(piece, str) and piece.strip()]


@dataclass
class DocumentIndexer:
    collections: CollectionService
    vectors: VectorIndex
    provider: ModelProvider
    embed_batch: int = 512

    async def index(self, job: Job) -> Indexed:
        """Index the job's documents; a provider failure or a busy vector index raises ``ProviderError`` (retryable
        or not, as classified): the job runs again, and what was indexed stays indexed."""
        task = job.request.collection
        assert task is not None  # an ingest job's request has its task (JobRequest checks)
        results: list[IndexedDocument] = []
        usage, model, backend, fallback = Usage(), job.model, None, None
        collection = await asyncio.to_thread(self.collections.find, job.tenant, task.collection_id)
        for document_id in task.document_ids:
            document = (await asyncio.to_thread(self.collections.get_document, job.tenant, task.collection_id,
                                                document_id) if collection is not None else None)
            if document is None:
                results.append(IndexedDocument(id=document_id, status="deleted"))
                continue
            if document.status != "queued":
                results.append(IndexedDocument(id=document_id, status=document.status,
                                               chunk_count=document.chunk_count, error=document.error))
                continue
            assert collection is not None
            try:
                text = await asyncio.to_thread(self.collections.document_text, document)
            except AijobsError as exc:  # unreadable: this document fails, the others go on
                await asyncio.to_thread(self.collections.mark_failed, document, exc.detail())
                results.append(IndexedDocument(id=document_id, status="failed", error=exc.detail()))
                continue
            pieces = await asyncio.to_thread(chunk_text, text, model=job.model, chunking=collection.chunking)
            vectors: list[list[float]] = []
            for start in range(0, len(pieces), self.embed_batch):
                made = await self.provider.embed(pieces[start:start + self.embed_batch], model=job.model,
                                                 dimensions=self.vectors.dimension)
                vectors += made.vectors
                usage += made.usage
                model, backend, fallback = made.model, made.backend, made.fallback_model
            results.append(await self._store(document, pieces, vectors, chars=len(text)))
        return Indexed(IngestOutput(documents=results), usage, model, backend, fallback)

    async def _store(self, document: Document, pieces: list[str], vectors: list[list[float]], *,
                     chars: int) -> IndexedDocument:
        chunks = [Chunk(document.tenant, document.collection_id, document.id, n, vector, piece, document.metadata)
                  for n, (piece, vector) in enumerate(zip(pieces, vectors, strict=True))]
        # Its chunks' count first, so that deleting it finds every chunk put even if this attempt dies; then the
        # put and the mark as one step a cancel does not cut in two (a document is ready with its chunks, or has
        # none searchable).
        if not await asyncio.to_thread(self.collections.mark_pending, document, len(chunks)):
            return IndexedDocument(id=document.id, status="deleted")
        return await asyncio.shield(self._put_and_mark(document, chunks, chars=chars))

    async def _put_and_mark(self, document: Document, chunks: list[Chunk], *, chars: int) -> IndexedDocument:
        try:
            await asyncio.to_thread(self.vectors.put, chunks)
        except AijobsError as exc:
            raise ProviderError(exc.message, code=exc.code, retryable=exc.retryable) from None
        if not await asyncio.to_thread(self.collections.mark_indexed, document, chunk_count=len(chunks), chars=chars):
            # deleted (or its collection) while it was indexed: its chunks go too
            await asyncio.to_thread(self.vectors.delete_document, document.tenant, document.collection_id,
                                    document.id, len(chunks))
            logger.info("document deleted while it was indexed: its chunks are deleted",
                        extra={"document_id": document.id})
            return IndexedDocument(id=document.id, status="deleted")
        count("DocumentsIndexed")
        count("ChunksIndexed", len(chunks))
        return IndexedDocument(id=document.id, status="ready", chunk_count=len(chunks))
