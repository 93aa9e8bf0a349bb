"""A batch's counts and status from its counters (models/batches.py): the arithmetic a polling client sees."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

import pytest

from aijobs.batches import BatchStore, _Counts
from aijobs.ids import new_ulid
from aijobs.models.batches import Batch
from aijobs.models.jobs import Job, JobRequest, JobStatus, Usage

_NoCounts = _Counts()


def _batch(**counters: Any) -> Batch:
    return Batch(id="bat_01K00000000000000000000000", tenant="t", created_at=1, **counters)


def test_a_new_batch_is_all_queued() -> None:
    counts = _batch(total=5).counts()
    assert (counts.queued, counts.in_progress, counts.completed) == (5, 0, 0)
    assert _batch(total=5).status == "in_progress"


def test_started_jobs_are_in_progress_until_they_end_and_a_requeued_one_stays_in_progress() -> None:
    # 5 jobs: 3 started (one of them requeued after a retryable failure: still started), 1 of those completed.
    batch = _batch(total=5, started=3, ended=1, completed=1)
    counts = batch.counts()
    assert (counts.queued, counts.in_progress, counts.completed) == (2, 2, 1)
    assert counts.queued + counts.in_progress + counts.completed + counts.failed + counts.cancelled == counts.total


def test_a_job_cancelled_while_queued_leaves_queued_and_never_was_in_progress() -> None:
    counts = _batch(total=4, started=1, ended=2, ended_unstarted=1, cancelled=1, completed=1).counts()
    assert (counts.queued, counts.in_progress, counts.cancelled, counts.completed) == (2, 0, 1, 1)


@pytest.mark.parametrize("counters", [
    {"total": 2, "started": 3},  # a lost end (its count write failed): more started than there are jobs
    {"total": 2, "ended": 2, "ended_unstarted": 0, "started": 1},  # a lost start
    {"total": 0, "ended": 1, "ended_unstarted": 1},
])
def test_counts_are_never_negative_whatever_lags(counters: dict[str, int]) -> None:
    counts = _batch(**counters).counts()
    assert min(counts.model_dump().values()) >= 0


def test_status_is_completed_only_once_every_job_has_ended() -> None:
    assert _batch(total=3, started=3, ended=2, completed=2).status == "in_progress"
    assert _batch(total=3, started=3, ended=3, completed=2, failed=1).status == "completed"


def test_a_cancel_is_cancelling_until_every_job_has_ended() -> None:
    assert _batch(total=3, ended=1, cancelled=1, cancel_requested_at=5).status == "cancelling"
    assert _batch(total=3, ended=3, cancelled=3, cancel_requested_at=5).status == "cancelled"


def test_the_public_batch_reads_its_cost_and_usage() -> None:
    out = _batch(total=1, started=1, ended=1, completed=1, cost_usd=Decimal("0.0125"), input_tokens=7,
                 output_tokens=9).to_public(results_cursor="c")
    assert out.cost_usd == 0.0125 and out.usage.input_tokens == 7 and out.usage.output_tokens == 9
    assert out.results_cursor == "c" and out.object == "batch"


def test_a_stored_item_with_its_keys_and_chunk_marks_reads_as_a_batch() -> None:
    item = {"pk": "BATCH#b", "sk": "BATCH", "gsi1pk": "BATCHES#t", "gsi1sk": "b", "id": "bat_x", "tenant": "t",
            "created_at": Decimal(1), "total": Decimal(3), "chunks": {"job_1"}, "cost_usd": Decimal("0.5")}
    batch = Batch.model_validate(item)
    assert batch.total == 3 and batch.cost_usd == Decimal("0.5")


class _SlowTable:
    """A table whose first write waits until the other adders have arrived: they arrive while it is under way."""

    def __init__(self, adders: int) -> None:
        self.writes: list[dict[str, Any]] = []
        self.arrived = threading.Barrier(adders)
        self.others_waiting = threading.Event()

    def update_item(self, **request: Any) -> dict[str, Any]:
        if not self.writes:
            self.others_waiting.wait(timeout=5)
        self.writes.append(request)
        return {}


def test_a_batchs_counts_made_while_its_write_is_under_way_go_in_one_write_together() -> None:
    table = _SlowTable(adders=6)
    store = BatchStore(table=table, retention_s=3600, clock=lambda: 1_000.0)
    jobs = [Job(id=f"job_{new_ulid()}", tenant="t", status=JobStatus.in_progress, model="m", attempt=1,
                request=JobRequest(input="x"), created_at=1, batch_id="bat_01K00000000000000000000000")
            for _ in range(6)]

    def end(job: Job) -> None:
        if job is not jobs[0]:
            time.sleep(0.05)  # after the first: its write is under way
        store.job_ended(job, JobStatus.completed, usage=Usage(input_tokens=2, output_tokens=3),
                        cost_usd=Decimal("0.5"))

    def watch() -> None:
        while len(store._open.get(jobs[0].batch_id or "", _NoCounts).job_ids) < 5:
            time.sleep(0.005)
        table.others_waiting.set()

    threads = [threading.Thread(target=end, args=(job,)) for job in jobs] + [threading.Thread(target=watch)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(table.writes) == 2  # the first alone, the five that came meanwhile together
    sums = [{name.removeprefix(":add_"): value for name, value in w["ExpressionAttributeValues"].items()}
            for w in table.writes]
    assert [s.get("ended") for s in sums] == [1, 5] and [s.get("completed") for s in sums] == [1, 5]
    assert [s.get("output_tokens") for s in sums] == [3, 15] and [s.get("cost_usd") for s in sums] == [
        Decimal("0.5"), Decimal("2.5")]
