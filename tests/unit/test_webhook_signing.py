"""Standard Webhooks signing, the event payload and the retry schedule: what a receiver verifies and relies on."""

from __future__ import annotations

import base64
import json
import time

import pytest
from openai import InvalidWebhookSignatureError, OpenAI
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from aijobs.models.common import ErrorDetail
from aijobs.models.jobs import Job, JobRequest, JobStatus, Usage
from aijobs.models.messages import DeliveryMessage
from aijobs.retry import MAX_RETRY_AFTER_S, RetrySchedule, retry_after_s
from aijobs.settings import Settings
from aijobs.webhooks.signing import event_payload, new_webhook_secret, signed_headers
from tests.helpers import load_event

WEBHOOK_ID = "msg_01JAAAAAAAAAAAAAAAAAAAAAAA"


def _job(status: JobStatus = JobStatus.completed) -> Job:
    return Job(id="job_01JAAAAAAAAAAAAAAAAAAAAAAA", tenant="t", status=status, model="fake-model",
               request=JobRequest(input="secret prompt", callback_url="https://example.com/h", metadata={"k": "v"}),
               created_at=1_795_000_000, started_at=1_795_000_001, completed_at=1_795_000_002,
               output_text="Echo: secret prompt" if status == JobStatus.completed else None,
               usage=Usage(input_tokens=2, output_tokens=3, total_tokens=5) if status == JobStatus.completed else None,
               error=ErrorDetail(type="provider_error", code="http_400", message="m", retryable=False)
               if status == JobStatus.failed else None, attempt=1)


def _signed(body: bytes, *secrets: str) -> dict[str, str]:
    return signed_headers(webhook_id=WEBHOOK_ID, body=body, signing_secrets=list(secrets), timestamp=int(time.time()))


def test_new_secret_is_whsec_and_32_random_bytes() -> None:
    first, second = new_webhook_secret(), new_webhook_secret()
    assert first.startswith("whsec_") and first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32


def test_signature_verifies_with_the_standardwebhooks_library() -> None:
    secret, body = new_webhook_secret(), event_payload(_job())
    headers = _signed(body, secret)
    assert headers["webhook-id"] == WEBHOOK_ID and headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers) == json.loads(body)


def test_signature_verifies_with_the_openai_sdk() -> None:
    secret, body = new_webhook_secret(), event_payload(_job())
    OpenAI(api_key="unused").webhooks.verify_signature(body, _signed(body, secret), secret=secret)


def test_signature_fails_for_another_secret_or_a_changed_body() -> None:
    secret, body = new_webhook_secret(), event_payload(_job())
    headers = _signed(body, secret)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_webhook_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"Echo", b"Ecko"), headers)
    with pytest.raises(InvalidWebhookSignatureError):
        OpenAI(api_key="unused").webhooks.verify_signature(body, headers, secret=new_webhook_secret())


def test_during_a_rotation_both_secrets_verify() -> None:
    old, new, body = new_webhook_secret(), new_webhook_secret(), event_payload(_job())
    headers = _signed(body, new, old)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(body, headers)
        OpenAI(api_key="unused").webhooks.verify_signature(body, headers, secret=secret)


@pytest.mark.parametrize(("status", "event"), [(JobStatus.completed, "job.completed"), (JobStatus.failed, "job.failed"),
                                               (JobStatus.cancelled, "job.cancelled")])
def test_payload_carries_the_public_job_as_get_answers_it(status: JobStatus, event: str) -> None:
    job = _job(status)
    payload = json.loads(event_payload(job))
    assert payload["type"] == event
    assert payload["timestamp"] == "2026-11-18T11:06:42Z"  # the job's completion, ISO 8601
    assert payload["data"] == job.to_public().model_dump(mode="json")
    assert "callback_url" not in json.dumps(payload)


def test_payload_is_the_same_bytes_for_every_retry() -> None:
    assert event_payload(_job()) == event_payload(_job())


def test_schedule_walks_its_delays_with_bounded_jitter_then_ends() -> None:
    schedule = RetrySchedule((0, 5, 300, 36_000))
    for made, delay in ((1, 5), (2, 300), (3, 36_000)):
        assert delay <= schedule.next_delay_s(made, None) <= delay * 1.1 + 1  # type: ignore[operator]
    assert schedule.next_delay_s(4, None) is None
    assert schedule.next_delay_s(4, 10) is None  # Retry-After never adds attempts


def test_retry_after_sets_the_next_wait_up_to_a_day() -> None:
    schedule = RetrySchedule((0, 5, 300))
    assert schedule.next_delay_s(1, 120) == 120
    assert schedule.next_delay_s(1, retry_after_s({"retry-after": str(10**9)})) == MAX_RETRY_AFTER_S


def test_retry_schedule_setting_is_comma_separated_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(webhook_retry_schedule="0,1,1").webhook_retry_schedule == (0, 1, 1)
    assert Settings().webhook_retry_schedule == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    monkeypatch.setenv("AIJOBS_WEBHOOK_RETRY_SCHEDULE", "0,2,5")
    assert Settings().webhook_retry_schedule == (0, 2, 5)
    for bad in ("", "0,five", "0,-1", ",".join(["1"] * 21)):
        with pytest.raises(ValidationError):
            Settings(webhook_retry_schedule=bad)


def test_sample_deliveries_event_holds_a_valid_delivery_message() -> None:
    (record,) = load_event("sqs_delivery")["Records"]
    message = DeliveryMessage.model_validate_json(record["body"])
    assert (message.attempt, message.first_attempt) == (1, 1) and record["eventSource"] == "aws:sqs"
