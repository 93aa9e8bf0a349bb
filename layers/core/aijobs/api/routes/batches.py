"""/v1/batches: the batches POST /v1/jobs/batch made: their counts, cost and cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from aijobs.api.deps import BatchesDep, BatchId, Cursor, TenantDep
from aijobs.api.responses import errors
from aijobs.models.batches import BatchList, BatchOut

router = APIRouter(prefix="/v1/batches", tags=["batches"], responses=errors(401, 429, 500))


@router.get("", response_model=BatchList, responses=errors(422))
def list_batches(tenant: TenantDep, batches: BatchesDep, cursor: Cursor = None,
                 limit: Annotated[int, Query(ge=1, le=100)] = 20) -> BatchList:
    """The caller's batches, newest first; follow `next_cursor` until it is null, which is the end."""
    page = batches.list_batches(tenant=tenant.id, limit=limit, cursor=cursor)
    return BatchList(data=[batch.to_public() for batch in page.items], next_cursor=page.next_cursor)


@router.get("/{batch_id}", response_model=BatchOut, responses=errors(404, 422))
def get_batch(batch_id: BatchId, tenant: TenantDep, batches: BatchesDep) -> BatchOut:
    """A batch's counts by status, usage and cost so far: one read of the batch, whatever its size (poll it)."""
    return batches.get(tenant=tenant.id, batch_id=batch_id).to_public()


@router.post("/{batch_id}/cancel", response_model=BatchOut, responses=errors(404, 409, 422))
def cancel_batch(batch_id: BatchId, tenant: TenantDep, batches: BatchesDep) -> BatchOut:
    """Cancel every job of the batch that has not ended (as `DELETE /v1/jobs/{id}` does); the batch takes no more
    jobs. A large batch is cancelled over several calls: while jobs remain it answers `cancelling`; call again until
    `cancelled`. A cancelled batch answers as it is."""
    return batches.cancel(tenant=tenant.id, batch_id=batch_id).to_public()
