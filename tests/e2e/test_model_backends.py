"""The stack of `make run` routes `fake-model-down` to a backend that is down: its job falls back to the fake model
at once and says so, and `GET /v1/models` lists both names (README "Model backends")."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from tests.e2e.conftest import Stack
from tests.helpers import eventually


def _finished(client: httpx.Client, job_id: str) -> dict[str, Any] | None:
    job = client.get(f"/v1/jobs/{job_id}").json()
    return job if job["status"] in ("completed", "failed", "cancelled") else None


def test_a_job_of_the_down_backends_model_falls_back_to_the_fake_model_and_records_it(stack: Stack) -> None:
    prompt = f"fall back {uuid.uuid4().hex[:8]}"
    with stack.client() as client:
        started = time.monotonic()
        submitted = client.post("/v1/jobs", json={"input": prompt, "model": "fake-model-down"})
        job = eventually(lambda: _finished(client, submitted.json()["id"]))
        elapsed = time.monotonic() - started

    assert job["status"] == "completed" and job["output"]["text"] == f"Echo: {prompt}"
    assert (job["model"], job["provider_model"], job["backend"]) == ("fake-model-down", "fake-model", "fake")
    assert job["attempt"] == 1  # the refused connection fell back within the attempt, not through a retry
    assert elapsed < 10, elapsed  # nothing waits on the down backend (the queue's retry would take seconds)
    assert "Model backends:" in stack.log_path.read_text()  # the banner says how to see it


def test_the_models_of_the_local_backends_are_listed(stack: Stack) -> None:
    with stack.client() as client:
        listed = client.get("/v1/models").json()
        missing = client.get("/v1/models/no-such-model")

    assert listed["object"] == "list"
    assert [(m["id"], m["owned_by"]) for m in listed["data"]] == [("fake-model", "fake"),
                                                                  ("fake-model-down", "fake-down")]
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
