"""Collections for search with sources: a tenant's named sets of documents, each with its embedding model and
chunking, on the tenant's partition (``TENANT#<t>`` / ``COLLECTION#<id>``, dynamo.py): deleting a tenant deletes
them with it, and another tenant's collection is not there for this one (404, never 403)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aijobs.clock import Clock, system_clock
from aijobs.dynamo import COLLECTION_PREFIX, Page, collection_key, query_index, tenant_partition, to_attributes
from aijobs.errors import NotFound
from aijobs.ids import new_collection_id
from aijobs.models.collections import Collection, CollectionRequest
from aijobs.observability import logger


@dataclass
class CollectionService:
    table: Any
    default_embedding_model: str
    clock: Clock = system_clock

    def create(self, *, tenant: str, request: CollectionRequest) -> Collection:
        collection = Collection(id=new_collection_id(), tenant=tenant, name=request.name,
                                embedding_model=request.embedding_model or self.default_embedding_model,
                                chunking=request.chunking, metadata=request.metadata, created_at=int(self.clock()))
        self.table.put_item(Item={**collection_key(tenant, collection.id), **to_attributes(collection)})
        logger.info("collection created", extra={"collection_id": collection.id, "tenant": tenant})
        return collection

    def get(self, *, tenant: str, collection_id: str) -> Collection:
        item = (self.table.get_item(Key=collection_key(tenant, collection_id)).get("Item")
                if collection_id.startswith("col_") else None)
        if item is None:
            raise NotFound("no such collection", code="collection_not_found")
        return Collection.model_validate(item)

    def list(self, *, tenant: str, limit: int, cursor: str | None) -> Page[Collection]:
        """A tenant's collections, newest first."""
        page = query_index(self.table, index=None, partition=tenant_partition(tenant), sort_prefix=COLLECTION_PREFIX,
                           limit=limit, cursor=cursor)
        return Page([Collection.model_validate(item) for item in page.items], page.next_cursor)

    def delete(self, *, tenant: str, collection_id: str) -> None:
        self.get(tenant=tenant, collection_id=collection_id)
        self.table.delete_item(Key=collection_key(tenant, collection_id))
        logger.info("collection deleted", extra={"collection_id": collection_id, "tenant": tenant})
