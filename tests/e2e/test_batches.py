"""Batches through the stack of `make run`, over HTTP, as the CLI uses them: chunks into one batch, polled counts,
a cancel while jobs run."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.helpers import eventually


def _chunk(client: httpx.Client, items: list[dict[str, Any]], batch_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"jobs": items} | ({"batch_id": batch_id} if batch_id else {})
    response = client.post("/v1/jobs/batch", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert response.status_code == 202, response.text
    return dict(response.json())


def _jobs(client: httpx.Client, batch_id: str) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    params: dict[str, Any] = {"batch_id": batch_id, "limit": 100}
    while True:
        page = client.get("/v1/jobs", params=params).json()
        jobs += page["data"]
        if not page["next_cursor"]:
            return jobs
        params["cursor"] = page["next_cursor"]


def test_a_batch_in_chunks_is_polled_to_completed_with_its_cost(stack: Stack) -> None:
    tag = uuid.uuid4().hex[:8]
    with stack.client() as client:
        first = _chunk(client, [{"input": f"{tag} {i}" + (" [[fail=400]]" if i % 10 == 0 else "")}
                                for i in range(30)])
        batch_id = first["batch_id"]
        _chunk(client, [{"input": f"{tag} {i}"} for i in range(30, 50)], batch_id)

        seen: list[dict[str, int]] = []

        def completed() -> dict[str, Any] | None:
            batch = client.get(f"/v1/batches/{batch_id}").json()
            seen.append(batch["counts"])
            return batch if batch["status"] == "completed" else None

        batch = eventually(completed, timeout_s=60)
        jobs = _jobs(client, batch_id)
    assert batch["counts"] == {"total": 50, "queued": 0, "in_progress": 0, "completed": 47, "failed": 3,
                               "cancelled": 0}
    assert all(c["queued"] + c["in_progress"] + c["completed"] + c["failed"] + c["cancelled"] == c["total"]
               for c in seen)
    assert len(jobs) == 50 and {job["batch_id"] for job in jobs} == {batch_id}
    assert batch["cost_usd"] == pytest.approx(sum(job["cost_usd"] or 0 for job in jobs))


def test_cancel_stops_a_running_batch_and_keeps_what_its_runs_cost(stack: Stack) -> None:
    with stack.client() as client:
        answer = _chunk(client, [{"input": f"slow {uuid.uuid4().hex[:6]} [[tokens=200]] [[token_ms=100]]",
                                  "stream": True} for _ in range(3)])
        batch_id = answer["batch_id"]
        # One of them is generating (20 s each if nobody stops them).
        ids = [item["id"] for item in answer["data"]]
        eventually(lambda: any(client.get(f"/v1/jobs/{job_id}").json()["output"] for job_id in ids), timeout_s=20)
        cancelled = client.post(f"/v1/batches/{batch_id}/cancel").json()
        assert cancelled["status"] == "cancelled" and cancelled["counts"]["cancelled"] == 3
        assert cancelled["counts"]["queued"] == cancelled["counts"]["in_progress"] == 0

        def run_costs_kept() -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
            # The stopped calls record what they used after the cancel; the batch adds it.
            jobs = _jobs(client, batch_id)
            batch = client.get(f"/v1/batches/{batch_id}").json()
            cost = sum(job["cost_usd"] or 0 for job in jobs)
            return (batch, jobs) if cost > 0 and batch["cost_usd"] == pytest.approx(cost) else None

        batch, jobs = eventually(run_costs_kept, timeout_s=15)
    assert {job["status"] for job in jobs} == {"cancelled"}
    assert batch["counts"] == cancelled["counts"]
