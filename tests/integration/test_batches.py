"""Batches (POST /v1/jobs/batch, /v1/batches): chunks into one batch, counters kept as the worker runs the jobs,
cost, idempotent replays, cancel, tenant isolation. In-process API and worker on moto, the real fake model."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from aijobs.idempotency import RequestKey
from aijobs.models.jobs import Usage
from aijobs.pricing import Price
from aijobs.services import Services
from aijobs.store import RunRecord
from tests.integration.conftest import KEY_B, TENANT_A, api_client, run_worker

CHUNKS = (30, 20, 10)  # 60 jobs; every 25th fails


def _items(count: int, *, start: int = 0) -> list[dict[str, Any]]:
    # Every 25th prompt is refused by the model (a 400 is not retried): those jobs fail.
    return [{"input": f"prompt {i}" + (" [[fail=400]]" if i % 25 == 0 else ""), "metadata": {"line": str(i)}}
            for i in range(start, start + count)]


def _submit_chunks(api: Any, sizes: tuple[int, ...] = CHUNKS) -> tuple[str, list[str]]:
    batch_id: str | None = None
    ids: list[str] = []
    start = 0
    for size in sizes:
        body: dict[str, Any] = {"jobs": _items(size, start=start)}
        if batch_id is not None:
            body["batch_id"] = batch_id
        response = api.post("/v1/jobs/batch", json=body)
        assert response.status_code == 202, response.text
        answer = response.json()
        assert answer["object"] == "list" and answer["batch_id"].startswith("bat_")
        assert batch_id in (None, answer["batch_id"])
        batch_id = answer["batch_id"]
        ids += [item["id"] for item in answer["data"]]
        start += size
    assert batch_id is not None
    return batch_id, ids


def _drain(services: Services, worker_handler: Any) -> None:
    while run_worker(services, worker_handler)["received"]:
        pass


def _batch_jobs(api: Any, batch_id: str, **params: Any) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = api.get("/v1/jobs", params={"batch_id": batch_id, "limit": 100, **params,
                                           **({"cursor": cursor} if cursor else {})}).json()
        jobs += page["data"]
        if not (cursor := page["next_cursor"]):
            return jobs


def test_batch_in_3_chunks_is_counted_as_the_worker_runs_it(api: Any, services: Services,
                                                            worker_handler: Any) -> None:
    batch_id, ids = _submit_chunks(api)
    batch = api.get(f"/v1/batches/{batch_id}").json()
    assert batch["object"] == "batch" and batch["status"] == "in_progress"
    assert batch["counts"] == {"total": 60, "queued": 60, "in_progress": 0, "completed": 0, "failed": 0,
                               "cancelled": 0}

    run_worker(services, worker_handler)  # one SQS batch: 10 jobs end
    counts = api.get(f"/v1/batches/{batch_id}").json()["counts"]
    assert counts["queued"] == 50 and counts["in_progress"] == 0 and counts["completed"] + counts["failed"] == 10

    _drain(services, worker_handler)
    batch = api.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "completed"
    assert batch["counts"] == {"total": 60, "queued": 0, "in_progress": 0, "completed": 57, "failed": 3,
                               "cancelled": 0}
    jobs = _batch_jobs(api, batch_id)
    assert sorted(job["id"] for job in jobs) == sorted(ids)
    assert all(job["batch_id"] == batch_id for job in jobs)
    assert batch["cost_usd"] == pytest.approx(sum(job["cost_usd"] or 0 for job in jobs)) and batch["cost_usd"] > 0
    assert batch["usage"]["output_tokens"] == sum(job["usage"]["output_tokens"] for job in jobs if job["usage"])
    failed = _batch_jobs(api, batch_id, status="failed")
    assert sorted(int(job["metadata"]["line"]) for job in failed) == [0, 25, 50]
    # A batch's list takes a time range as a filter (its ended jobs are not sorted by id).
    made_at = min(job["created_at"] for job in jobs)
    assert len(_batch_jobs(api, batch_id, created_from=made_at)) == 60
    assert _batch_jobs(api, batch_id, created_before=made_at) == []


def _results(api: Any, batch_id: str, cursor: str | None = None, limit: int = 100) -> tuple[list[str], str | None]:
    response = api.get(f"/v1/batches/{batch_id}/results", params={"limit": limit, **({"cursor": cursor} if cursor
                                                                                      else {})})
    assert response.status_code == 200, response.text
    page = response.json()
    assert all(job["status"] in ("completed", "failed", "cancelled") for job in page["data"])
    return [job["id"] for job in page["data"]], page["next_cursor"]


def test_results_are_read_as_they_end_once_each_and_the_cursor_ends_with_the_batch(
        api: Any, services: Services, worker_handler: Any) -> None:
    settle = services.settings.batch_results_settle_s
    batch_id, ids = _submit_chunks(api, (15,))
    assert _results(api, batch_id)[0] == []  # none ended: an empty page and a cursor to come back with
    run_worker(services, worker_handler)  # 10 end
    fresh, cursor = _results(api, batch_id)
    assert fresh == []  # not yet settled
    services.clock.advance(settle)
    first, cursor = _results(api, batch_id, limit=4)
    more, cursor = _results(api, batch_id, cursor)
    assert len(first) == 4 and len(more) == 6 and cursor is not None
    assert _results(api, batch_id, cursor) == ([], cursor)  # nothing new: the same place
    since = api.get(f"/v1/batches/{batch_id}").json()["results_cursor"]

    services.clock.advance(1)
    _drain(services, worker_handler)  # the last 5
    services.clock.advance(settle)
    last, end = _results(api, batch_id, cursor)
    assert len(last) == 5 and end is None  # the batch ended and every result was given
    assert _results(api, batch_id, since) == (last, None)  # the batch's cursor: what ended after it was read
    assert sorted(first + more + last) == sorted(ids)
    # The jobs list shows the ended ones first, the last to end first.
    listed = [job["id"] for job in _batch_jobs(api, batch_id)]
    assert listed[:5] == list(reversed(last))


def test_a_results_cursor_that_is_not_one_is_422(api: Any) -> None:
    batch_id, _ = _submit_chunks(api, (1,))
    for cursor in ("nope", "fjAwMDAwMDAwMDB-Kg=="):  # the second: "~0000000000~*"
        response = api.get(f"/v1/batches/{batch_id}/results", params={"cursor": cursor})
        assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_cursor"


def test_a_job_outside_a_batch_has_no_batch_id_and_is_not_listed_in_one(api: Any) -> None:
    single = api.post("/v1/jobs", json={"input": "alone"}).json()
    batch_id, ids = _submit_chunks(api, (2,))
    assert single["batch_id"] is None
    assert {job["id"] for job in _batch_jobs(api, batch_id)} == set(ids)


def test_keyed_chunks_replay_the_same_answer_and_count_once(api: Any) -> None:
    first_body = {"jobs": _items(3, start=1)}
    first = api.post("/v1/jobs/batch", json=first_body, headers={"Idempotency-Key": "file#0"})
    assert api.post("/v1/jobs/batch", json=first_body, headers={"Idempotency-Key": "file#0"}).json() == first.json()
    batch_id = first.json()["batch_id"]
    second_body = {"jobs": _items(2, start=4), "batch_id": batch_id}
    second = api.post("/v1/jobs/batch", json=second_body, headers={"Idempotency-Key": "file#1"}).json()
    assert api.post("/v1/jobs/batch", json=second_body, headers={"Idempotency-Key": "file#1"}).json() == second
    assert second["batch_id"] == batch_id
    assert api.get(f"/v1/batches/{batch_id}").json()["counts"]["total"] == 5
    assert len(_batch_jobs(api, batch_id)) == 5


def test_a_keyed_retry_whose_answer_was_lost_names_the_same_batch_and_jobs_and_counts_them_once(
        services: Services) -> None:
    # Past Powertools' record (the first try died before its answer was kept): the key's reservations decide.
    key = RequestKey.of(scope="t#submit_batch", key="lost", body={"n": 1})
    first_batch, first = services.batches.submit(tenant=TENANT_A, items=_items(4, start=1), batch_id=None, key=key)
    again_batch, again = services.batches.submit(tenant=TENANT_A, items=_items(4, start=1), batch_id=None, key=key)
    assert again_batch == first_batch and [job.id for job in again] == [job.id for job in first]  # type: ignore[union-attr]
    batch = services.batch_store.get(first_batch, consistent=True)
    assert batch is not None and batch.total == 4


def test_a_chunk_whose_items_all_fail_validation_still_answers_its_batch(api: Any) -> None:
    response = api.post("/v1/jobs/batch", json={"jobs": [{"input": ""}, {"nope": 1}]})
    assert response.status_code == 202
    answer = response.json()
    assert all("error" in item for item in answer["data"])
    batch = api.get(f"/v1/batches/{answer['batch_id']}").json()
    assert batch["counts"]["total"] == 0


def test_cancel_of_a_half_run_batch_stops_every_unfinished_job(api: Any, services: Services,
                                                                worker_handler: Any) -> None:
    batch_id, ids = _submit_chunks(api, (20, 10))
    run_worker(services, worker_handler)  # 10 end
    response = api.post(f"/v1/batches/{batch_id}/cancel")
    assert response.status_code == 200
    batch = response.json()
    assert batch["status"] == "cancelled"
    assert batch["counts"]["queued"] == 0 and batch["counts"]["in_progress"] == 0
    ended = batch["counts"]["completed"] + batch["counts"]["failed"]
    assert ended == 10 and batch["counts"]["cancelled"] == 20

    _drain(services, worker_handler)  # their messages find cancelled jobs: none runs
    jobs = _batch_jobs(api, batch_id)
    assert sorted(job["id"] for job in jobs) == sorted(ids)
    assert sum(job["status"] == "cancelled" and job["started_at"] is None for job in jobs) == 20
    assert api.get(f"/v1/batches/{batch_id}").json()["counts"] == batch["counts"]
    again = api.post(f"/v1/batches/{batch_id}/cancel").json()
    assert again | {"results_cursor": None} == batch | {"results_cursor": None}  # as it is
    refused = api.post("/v1/jobs/batch", json={"jobs": _items(1), "batch_id": batch_id})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "batch_cancelled"


def test_a_large_cancel_goes_in_pages_and_answers_cancelling_until_done(api: Any, services: Services,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import aijobs.batches

    monkeypatch.setattr(aijobs.batches, "CANCEL_PAGE", 4)
    monkeypatch.setattr(aijobs.batches, "CANCEL_BUDGET_S", 0)  # one page a call
    batch_id, _ = _submit_chunks(api, (10,))
    statuses = []
    for _ in range(5):
        batch = api.post(f"/v1/batches/{batch_id}/cancel").json()
        statuses.append((batch["status"], batch["counts"]["cancelled"]))
    assert statuses == [("cancelling", 4), ("cancelling", 8), ("cancelled", 10), ("cancelled", 10),
                        ("cancelled", 10)]


def test_a_cancelled_running_jobs_kept_run_adds_its_cost_to_the_batch(api: Any, services: Services) -> None:
    batch_id, [job_id] = _submit_chunks(api, (1,))
    claimed = services.store.claim_job(job_id, lease_s=60).job
    assert claimed is not None
    assert api.get(f"/v1/batches/{batch_id}").json()["counts"]["in_progress"] == 1
    api.post(f"/v1/batches/{batch_id}/cancel")
    # The stopped call's worker then keeps what the run used and cost (worker.py, on a claim lost to a cancel).
    run = RunRecord(duration_ms=5, output_seq=0, output_logged_chars=0)
    assert services.store.keep_cancelled_run(claimed, output_text="so far",
                                             usage=Usage(input_tokens=3, output_tokens=2),
                                             price=Price(Decimal("0.25"), True), run=run)
    batch = api.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "cancelled" and batch["counts"]["cancelled"] == 1
    assert batch["cost_usd"] == 0.25 and batch["usage"] == {"input_tokens": 3, "output_tokens": 2}
    assert api.get(f"/v1/jobs/{job_id}").json()["cost_usd"] == 0.25


def test_another_tenants_batch_is_404_everywhere(api: Any) -> None:
    batch_id, _ = _submit_chunks(api, (2,))
    with api_client(KEY_B) as other:
        for response in (other.get(f"/v1/batches/{batch_id}"), other.post(f"/v1/batches/{batch_id}/cancel"),
                         other.get(f"/v1/batches/{batch_id}/results"),
                         other.post("/v1/jobs/batch", json={"jobs": _items(1), "batch_id": batch_id})):
            assert response.status_code == 404 and response.json()["error"]["code"] == "batch_not_found"
        assert other.get("/v1/jobs", params={"batch_id": batch_id}).json()["data"] == []
        assert other.get("/v1/batches").json()["data"] == []
    assert api.get(f"/v1/batches/{batch_id}").json()["counts"]["total"] == 2  # nothing was added or cancelled
    for unknown in (api.get("/v1/batches/bat_01K00000000000000000000000"),
                    api.post("/v1/jobs/batch", json={"jobs": _items(1), "batch_id": "bat_nope"})):
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "batch_not_found"
    assert len(api.get("/v1/jobs", params={"limit": 100}).json()["data"]) == 2  # the refused chunk wrote none


def test_batches_are_listed_newest_first_in_pages(api: Any) -> None:
    made = [_submit_chunks(api, (1,))[0] for _ in range(3)]
    first = api.get("/v1/batches", params={"limit": 2}).json()
    rest = api.get("/v1/batches", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [b["id"] for b in first["data"] + rest["data"]] == made[::-1] and rest["next_cursor"] is None


def test_a_batch_expires_with_its_jobs(api: Any, services: Services) -> None:
    batch_id, _ = _submit_chunks(api, (1,))
    item = services.table.get_item(Key={"pk": f"BATCH#{batch_id}", "sk": "BATCH"})["Item"]
    assert int(item["expires_at"]) >= int(services.clock()) + services.settings.retention_s - 1


def test_schedule_id_and_batch_id_together_are_422(api: Any) -> None:
    response = api.get("/v1/jobs", params={"batch_id": "bat_x", "schedule_id": "sch_x"})
    assert response.status_code == 422


def test_a_chunk_that_could_not_be_queued_is_taken_back_out_of_the_total(api: Any, services: Services,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    batch_id, _ = _submit_chunks(api, (2,))
    body = {"jobs": _items(3, start=10), "batch_id": batch_id}

    def down(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("SQS is down")

    with monkeypatch.context() as patched:
        patched.setattr(services.job_queue, "send_jobs", down)
        failed = api.post("/v1/jobs/batch", json=body, headers={"Idempotency-Key": "chunk-1"})
    assert failed.status_code == 503
    assert api.get(f"/v1/batches/{batch_id}").json()["counts"]["total"] == 2
    retried = api.post("/v1/jobs/batch", json=body, headers={"Idempotency-Key": "chunk-1"})
    assert retried.status_code == 202
    assert api.get(f"/v1/batches/{batch_id}").json()["counts"] == {
        "total": 5, "queued": 5, "in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0}
