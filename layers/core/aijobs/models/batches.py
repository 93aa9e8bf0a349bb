"""Batches: the jobs one ``POST /v1/jobs/batch`` submit made (in one or many chunks), counted as they run."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import ConfigDict, Field

from aijobs.models.common import Model

BatchStatus = Literal["in_progress", "completed", "cancelling", "cancelled"]


class Batch(Model):
    """A batch as stored: counters kept by the writers of its jobs' transitions (store.py), never by reading jobs.

    ``started`` counts first claims (a job's attempt 1), ``ended`` terminal transitions, of which
    ``ended_unstarted`` those of jobs that never started (cancelled while queued, failed by the sweeper unclaimed).
    """

    model_config = ConfigDict(extra="ignore")  # the item also holds its chunks' marks (``chunks``) and keys

    id: str
    tenant: str
    created_at: int
    expires_at: int | None = None
    total: int = 0
    started: int = 0
    ended: int = 0
    ended_unstarted: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    cost_usd: Decimal = Decimal(0)
    input_tokens: int = 0
    output_tokens: int = 0
    cancel_requested_at: int | None = None
    last_ended_at: int | None = None  # when the last of its jobs so far ended
    cancel_cursor: str | None = None  # where the next cancel call resumes its pages of the batch's jobs

    @property
    def status(self) -> BatchStatus:
        """``completed`` (or ``cancelled``) once every job counted in ``total`` has ended; never before."""
        done = self.ended >= self.total
        if self.cancel_requested_at is not None:
            return "cancelled" if done else "cancelling"
        return "completed" if done else "in_progress"

    def counts(self) -> BatchCounts:
        """The counts by status: queued = total - started - ended unstarted, in_progress = started - ended started
        (a job requeued after a retryable failure stays in_progress); never negative, whatever may lag."""
        ended_started = self.ended - self.ended_unstarted
        return BatchCounts(total=self.total, queued=max(0, self.total - self.started - self.ended_unstarted),
                           in_progress=max(0, self.started - ended_started), completed=self.completed,
                           failed=self.failed, cancelled=self.cancelled)

    def to_public(self, *, results_cursor: str) -> BatchOut:
        return BatchOut(id=self.id, created_at=self.created_at, status=self.status, counts=self.counts(),
                        cost_usd=float(self.cost_usd),
                        usage=BatchUsage(input_tokens=self.input_tokens, output_tokens=self.output_tokens),
                        results_cursor=results_cursor)


class BatchCounts(Model):
    total: int = Field(description="Jobs submitted into the batch (items refused by validation or limits are not)")
    queued: int
    in_progress: int = Field(description="Started and not ended (includes a job waiting for a retry)")
    completed: int
    failed: int
    cancelled: int


class BatchUsage(Model):
    input_tokens: int
    output_tokens: int


class BatchOut(Model):
    """A batch as ``GET /v1/batches/{id}`` answers it: read from one item, whatever the batch's size."""

    id: str
    object: Literal["batch"] = "batch"
    created_at: int
    status: BatchStatus
    counts: BatchCounts
    cost_usd: float = Field(description="The cost of its ended jobs (a cancelled running job's once its call stops)")
    usage: BatchUsage
    results_cursor: str = Field(description=(
        "Where the results that end after this read begin: `GET /v1/batches/{id}/results?cursor=` gives them as they "
        "end (without a cursor it gives every result from the first)"))


class BatchList(Model):
    object: Literal["list"] = "list"
    data: list[BatchOut]
    next_cursor: str | None
