"""/v1/collections: a tenant's collections of documents for search with sources."""

from __future__ import annotations

from typing import Annotated

from anyio import from_thread
from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from aijobs.api.deps import (
    MAX_ID_CHARS,
    CollectionIdPath,
    CollectionsDep,
    Cursor,
    IdempotentDep,
    JobsDep,
    JobViewDep,
    TenantDep,
    created,
)
from aijobs.api.responses import errors
from aijobs.errors import NotFound
from aijobs.models.collections import (
    CollectionList,
    CollectionOut,
    CollectionRequest,
    Document,
    DocumentList,
    DocumentOut,
    DocumentsAdded,
    DocumentsRequest,
    QueryLog,
    SearchJob,
    SearchRequest,
    SearchResult,
)
from aijobs.models.common import ErrorDetail

DocumentIdPath = Annotated[str, Path(max_length=MAX_ID_CHARS, description="A document's id (doc_...)")]

router = APIRouter(prefix="/v1/collections", tags=["collections"], responses=errors(401, 429, 500))


@router.post("", status_code=201, response_model=CollectionOut, responses=errors(400, 409, 413, 422))
def create_collection(body: CollectionRequest, tenant: TenantDep, collections: CollectionsDep,
                      idempotent: IdempotentDep) -> JSONResponse:
    """Create a collection: its name, the model that embeds its documents and queries, how documents are cut into
    chunks (`chunking.max_tokens`, `chunking.overlap_tokens`), and metadata of your own."""
    result = idempotent.run("create_collection", body=body.model_dump(mode="json", exclude_unset=True),
                            create=lambda _: collections.create(tenant=tenant.id, request=body).to_public().model_dump(
                                mode="json"))
    return created(result, status_code=201, location=f"/v1/collections/{result.answer['id']}")


@router.get("", response_model=CollectionList, responses=errors(422))
def list_collections(tenant: TenantDep, collections: CollectionsDep, cursor: Cursor = None,
                     limit: Annotated[int, Query(ge=1, le=100)] = 20) -> CollectionList:
    """The caller's collections, newest first; follow `next_cursor` until it is null, which is the end."""
    page = collections.list(tenant=tenant.id, limit=limit, cursor=cursor)
    return CollectionList(data=[collection.to_public() for collection in page.items], next_cursor=page.next_cursor)


@router.get("/{collection_id}", response_model=CollectionOut, responses=errors(404, 422))
def get_collection(collection_id: CollectionIdPath, tenant: TenantDep, collections: CollectionsDep) -> CollectionOut:
    """A collection, with how many documents and chunks it holds."""
    return collections.get(tenant=tenant.id, collection_id=collection_id).to_public()


@router.delete("/{collection_id}", status_code=204, response_class=Response, responses=errors(404, 422))
def delete_collection(collection_id: CollectionIdPath, tenant: TenantDep, collections: CollectionsDep) -> Response:
    """Delete a collection."""
    collections.delete(tenant=tenant.id, collection_id=collection_id)
    return Response(status_code=204)


# --- documents ---------------------------------------------------------------------------------------------------

@router.post("/{collection_id}/documents", status_code=202, response_model=DocumentsAdded,
             responses=errors(400, 404, 409, 413, 422, 503))
def add_documents(collection_id: CollectionIdPath, body: DocumentsRequest, tenant: TenantDep,
                  collections: CollectionsDep, idempotent: IdempotentDep) -> JSONResponse:
    """Add 1-100 documents (each its `text`, or an `s3` object in a bucket the stack may read, with `metadata` of
    your own): one job indexes them (chunks them, embeds the chunks, puts them in the vector index). Follow their
    `status` here (queued, indexing, ready, failed) or the job at `Location`."""
    def add(_: object) -> dict[str, object]:
        job, documents = collections.add_documents(tenant=tenant.id, collection_id=collection_id, request=body)
        return DocumentsAdded(job_id=job.id, data=[d.to_public(job.status.value) for d in documents]).model_dump(
            mode="json")

    result = idempotent.run("add_documents", body={"collection_id": collection_id,
                                                   **body.model_dump(mode="json", exclude_unset=True)}, create=add)
    return created(result, status_code=202, location=f"/v1/jobs/{result.answer['job_id']}")


def _shown(documents: list[Document], tenant: str, jobs: JobsDep) -> list[DocumentOut]:
    """Documents as the API shows them: a queued one's status follows its job (read once a job)."""
    statuses: dict[str, tuple[str | None, ErrorDetail | None]] = {}
    for job_id in {d.job_id for d in documents if d.status == "queued"}:
        try:
            job = jobs.get_job(tenant=tenant, job_id=job_id)
            statuses[job_id] = (job.status.value, job.error)
        except NotFound:  # its retention has ended
            statuses[job_id] = (None, None)
    return [d.to_public(*statuses[d.job_id]) if d.job_id in statuses else d.to_public() for d in documents]


@router.get("/{collection_id}/documents", response_model=DocumentList, responses=errors(404, 422))
def list_documents(collection_id: CollectionIdPath, tenant: TenantDep, collections: CollectionsDep, jobs: JobsDep,
                   cursor: Cursor = None, limit: Annotated[int, Query(ge=1, le=100)] = 20) -> DocumentList:
    """A collection's documents, newest first, with their status; follow `next_cursor` until it is null."""
    page = collections.list_documents(tenant=tenant.id, collection_id=collection_id, limit=limit, cursor=cursor)
    return DocumentList(data=_shown(page.items, tenant.id, jobs), next_cursor=page.next_cursor)


@router.get("/{collection_id}/documents/{document_id}", response_model=DocumentOut, responses=errors(404, 422))
def get_document(collection_id: CollectionIdPath, document_id: DocumentIdPath, tenant: TenantDep,
                 collections: CollectionsDep, jobs: JobsDep) -> DocumentOut:
    """A document and its status."""
    document = collections.document(tenant=tenant.id, collection_id=collection_id, document_id=document_id)
    return _shown([document], tenant.id, jobs)[0]


@router.delete("/{collection_id}/documents/{document_id}", status_code=204, response_class=Response,
               responses=errors(404, 422))
def delete_document(collection_id: CollectionIdPath, document_id: DocumentIdPath, tenant: TenantDep,
                    collections: CollectionsDep) -> Response:
    """Delete a document: its chunks leave the index at once, and no search finds them again."""
    collections.delete_document(tenant=tenant.id, collection_id=collection_id, document_id=document_id)
    return Response(status_code=204)


# --- search ------------------------------------------------------------------------------------------------------

@router.post("/{collection_id}/search", response_model=SearchResult,
             responses={202: {"model": SearchJob, "description": "generate: true: the chunks, and the job that "
                                                                 "answers from them"},
                        **errors(400, 403, 404, 409, 413, 422, 502, 503)})
async def search(collection_id: CollectionIdPath, body: SearchRequest, tenant: TenantDep,
                 collections: CollectionsDep, idempotent: IdempotentDep, view: JobViewDep) -> JSONResponse:
    """The collection's chunks nearest the query, best first: at most `top_k`, none scoring under `min_score`
    (`score` is the cosine similarity of the chunk's and the query's embeddings, from -1 to 1), only of documents
    whose metadata matches `filter`. With `generate: true`, a 202 and a job (poll, stream, cancel it as any job)
    whose output is `{answer, citations, chunks}`: the model's answer from the chunks, citing them by number.
    Every search is kept in the query log (`GET .../queries`)."""
    def run(_: object) -> dict[str, object]:
        found = from_thread.run(lambda: collections.search(tenant=tenant.id, collection_id=collection_id,
                                                           request=body))
        common = {"query_id": found.query_id, "data": found.chunks, "usage": found.usage,
                  "cost_usd": float(found.cost_usd)}
        if found.job is None:
            return SearchResult(**common).model_dump(mode="json")
        return SearchJob(job=view(found.job), **common).model_dump(mode="json")

    result = await run_in_threadpool(idempotent.run, "search", body={
        "collection_id": collection_id, **body.model_dump(mode="json", exclude_unset=True)}, create=run)
    if result.answer.get("job") is None:
        return created(result, status_code=200)
    return created(result, status_code=202, location=f"/v1/jobs/{result.answer['job']['id']}")


@router.get("/{collection_id}/queries", response_model=QueryLog, responses=errors(404, 422))
def list_queries(collection_id: CollectionIdPath, tenant: TenantDep, collections: CollectionsDep,
                 cursor: Cursor = None, limit: Annotated[int, Query(ge=1, le=100)] = 20) -> QueryLog:
    """The collection's query log, newest first: each search's query, parameters, the chunks it found with their
    scores, its answer job, its latency. Entries are kept as long as jobs are (the stack's result retention)."""
    page = collections.list_queries(tenant=tenant.id, collection_id=collection_id, limit=limit, cursor=cursor)
    return QueryLog(data=page.items, next_cursor=page.next_cursor)
