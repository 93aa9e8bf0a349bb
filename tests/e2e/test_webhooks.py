"""Webhooks through the stack of `make run`, as a receiver on 127.0.0.1 sees them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from standardwebhooks.webhooks import Webhook

from tests.e2e.conftest import KEYS, Stack, start_stack, stop_stack
from tests.helpers import eventually
from tests.receiver import Answer, Receiver


def _ledger(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    return list(client.get(f"/v1/jobs/{job_id}/deliveries").json()["data"])


def test_receiver_that_fails_then_recovers_gets_the_event_once_verifiable_and_deduplicable(
        stack: Stack, receiver: Receiver) -> None:
    receiver.answer(Answer(503), Answer(500))  # down for two attempts
    with stack.client() as client:
        job = client.post("/v1/jobs", json={"input": "notify me", "callback_url": f"{receiver.url}/hooks/aijobs"})
        assert job.status_code == 202
        job_id = job.json()["id"]
        ledger = eventually(lambda: (rows := _ledger(client, job_id)) and rows[-1]["outcome"] == "delivered" and rows)
        secret = client.get("/v1/webhook-secrets").json()["data"][0]["secret"]
        final = client.get(f"/v1/jobs/{job_id}").json()
    assert [(row["attempt"], row["status_code"]) for row in ledger] == [(1, 503), (2, 500), (3, 200)]
    assert len(receiver.received) == 3
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1  # one id across retries: dedupe by it
    for request in receiver.received:  # every attempt is signed, not only the one that got through
        payload = Webhook(secret).verify(request.body, request.headers)
        OpenAI(api_key="unused").webhooks.verify_signature(request.body, request.headers, secret=secret)
        # the job as GET answers it, but for the URL of its stream: a webhook is sent for a job that has ended
        assert payload["type"] == "job.completed" and payload["data"] == {**final, "stream_url": None}


def test_rotation_signs_with_both_secrets_during_the_overlap(stack: Stack, receiver: Receiver) -> None:
    with stack.client("tenant-b") as client:
        before = {s["secret"] for s in client.get("/v1/webhook-secrets").json()["data"]}
        new = client.post("/v1/webhook-secrets/rotate").json()["secret"]
        job_id = client.post("/v1/jobs", json={"input": "rotated", "callback_url": receiver.url}).json()["id"]
        eventually(lambda: receiver.received)
        assert _ledger(client, job_id)[0]["outcome"] == "delivered"
    (request,) = receiver.received
    for secret in (*before, new):
        Webhook(secret).verify(request.body, request.headers)


def test_redeliver_resends_the_same_event(stack: Stack, receiver: Receiver) -> None:
    with stack.client() as client:
        job_id = client.post("/v1/jobs", json={"input": "again", "callback_url": receiver.url}).json()["id"]
        eventually(lambda: receiver.received)
        assert client.post(f"/v1/jobs/{job_id}/deliveries/redeliver").status_code == 202
        eventually(lambda: len(receiver.received) == 2)
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert json.loads(first.body) == json.loads(second.body)


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://[::ffff:127.0.0.1]:8000/",
                                 "file:///etc/passwd", "http://user:pw@127.0.0.1/"])
def test_forbidden_callback_urls_are_refused_even_in_development(stack: Stack, url: str) -> None:
    with stack.client() as client:
        response = client.post("/v1/jobs", json={"input": "ssrf", "callback_url": url})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "callback_url_forbidden"


def test_stack_with_private_callbacks_off_applies_the_full_guard(tmp_path: Path, receiver: Receiver) -> None:
    process, running = start_stack(tmp_path / "stack.log", AIJOBS_ALLOW_PRIVATE_CALLBACKS="0")
    try:
        response = httpx.post(f"{running.url}/v1/jobs", json={"input": "local", "callback_url": receiver.url},
                              headers={"Authorization": f"Bearer {KEYS['tenant-a']}"})
    finally:
        stop_stack(process)
    assert response.status_code == 422 and response.json()["error"]["code"] == "callback_url_forbidden"
    assert "WARNING: callback_url may point at loopback" not in running.log_path.read_text()
    assert receiver.received == []


def test_development_stack_warns_that_private_callbacks_are_allowed(stack: Stack) -> None:
    assert "WARNING: callback_url may point at loopback and private addresses" in stack.log_path.read_text()
