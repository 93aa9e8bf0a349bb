"""/v1/collections: a tenant's collections of documents for search with sources."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from aijobs.api.deps import CollectionIdPath, CollectionsDep, Cursor, IdempotentDep, TenantDep, created
from aijobs.api.responses import errors
from aijobs.models.collections import CollectionList, CollectionOut, CollectionRequest

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
