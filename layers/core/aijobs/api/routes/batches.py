"""/v1/batches: the batches POST /v1/jobs/batch made: their counts, cost and cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from aijobs.api.deps import BatchesDep, BatchId, Cursor, JobViewDep, TenantDep
from aijobs.api.responses import errors
from aijobs.models.batches import BatchList, BatchOut
from aijobs.models.jobs import JobList

router = APIRouter(prefix="/v1/batches", tags=["batches"], responses=errors(401, 429, 500))


@router.get("", response_model=BatchList, responses=errors(422))
def list_batches(tenant: TenantDep, batches: BatchesDep, cursor: Cursor = None,
                 limit: Annotated[int, Query(ge=1, le=100)] = 20) -> BatchList:
    """The caller's batches, newest first; follow `next_cursor` until it is null, which is the end."""
    page = batches.list_batches(tenant=tenant.id, limit=limit, cursor=cursor)
    results_cursor = batches.results_cursor()
    return BatchList(data=[batch.to_public(results_cursor=results_cursor) for batch in page.items],
                     next_cursor=page.next_cursor)


@router.get("/{batch_id}", response_model=BatchOut, responses=errors(404, 422))
def get_batch(batch_id: BatchId, tenant: TenantDep, batches: BatchesDep) -> BatchOut:
    """A batch's counts by status, usage and cost so far: one read of the batch, whatever its size (poll it)."""
    return batches.get(tenant=tenant.id, batch_id=batch_id).to_public(results_cursor=batches.results_cursor())


@router.get("/{batch_id}/results", response_model=JobList, responses=errors(404, 422))
def batch_results(batch_id: BatchId, tenant: TenantDep, batches: BatchesDep, view: JobViewDep, cursor: Cursor = None,
                  limit: Annotated[int, Query(ge=1, le=100)] = 100) -> JobList:
    """The batch's ended jobs (its results), in the order they ended, each once it ended a few seconds ago.

    Follow `next_cursor` to read on: while the batch runs it is never null, and calling again with it later gives
    the results that ended since (an empty page: none yet), none twice; it is null once the batch has ended and every
    result was given. Keep the cursor to resume reading where you stopped."""
    page = batches.results(tenant=tenant.id, batch_id=batch_id, limit=limit, cursor=cursor)
    return JobList(data=[view(job) for job in page.items], next_cursor=page.next_cursor)


@router.post("/{batch_id}/cancel", response_model=BatchOut, responses=errors(404, 409, 422))
def cancel_batch(batch_id: BatchId, tenant: TenantDep, batches: BatchesDep) -> BatchOut:
    """Cancel every job of the batch that has not ended (as `DELETE /v1/jobs/{id}` does); the batch takes no more
    jobs. A large batch is cancelled over several calls: while jobs remain it answers `cancelling`; call again until
    `cancelled`. A cancelled batch answers as it is."""
    return batches.cancel(tenant=tenant.id, batch_id=batch_id).to_public(results_cursor=batches.results_cursor())
