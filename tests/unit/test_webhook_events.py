"""A final event's type and body by surface (aijobs' for jobs, OpenAI's for responses), the webhook-id of each
destination, and the deliveries message of a callback_url as it was before endpoints."""

from __future__ import annotations

import json
import time

import pytest
from openai import OpenAI
from openai.types.webhooks import ResponseCompletedWebhookEvent, ResponseIncompleteWebhookEvent

from aijobs.errors import InvalidRequest
from aijobs.ids import destination_webhook_id, new_webhook_id
from aijobs.models.jobs import Job, JobRequest, JobStatus
from aijobs.models.messages import DeliveryMessage
from aijobs.webhooks.endpoints import check_event_types
from aijobs.webhooks.signing import event_payload, event_type, new_webhook_secret, signed_headers

ULID = "01JAAAAAAAAAAAAAAAAAAAAAAA"
EVENT_ID = "msg_01JBBBBBBBBBBBBBBBBBBBBBBB"
ENDPOINT = "we_01JCCCCCCCCCCCCCCCCCCCCCCC"


def _job(status: JobStatus, *, surface: str = "jobs", finish_reason: str | None = None) -> Job:
    return Job(id=f"job_{ULID}", tenant="t", status=status, model="m", request=JobRequest(input="x"),
               created_at=1_795_000_000, completed_at=1_795_000_002, attempt=1, surface=surface,  # type: ignore[arg-type]
               finish_reason=finish_reason, webhook_event_id=EVENT_ID)


@pytest.mark.parametrize(("status", "finish_reason", "jobs_type", "responses_type"), [
    (JobStatus.completed, "stop", "job.completed", "response.completed"),
    (JobStatus.completed, "length", "job.completed", "response.incomplete"),
    (JobStatus.failed, None, "job.failed", "response.failed"),
    (JobStatus.cancelled, None, "job.cancelled", "response.cancelled"),
])
def test_the_event_type_speaks_the_surfaces_language(status: JobStatus, finish_reason: str | None, jobs_type: str,
                                                     responses_type: str) -> None:
    assert event_type(_job(status, finish_reason=finish_reason)) == jobs_type
    assert event_type(_job(status, surface="responses", finish_reason=finish_reason)) == responses_type


def test_a_responses_body_is_openais_event_and_the_sdk_parses_it() -> None:
    body = event_payload(_job(JobStatus.completed, surface="responses"))
    assert json.loads(body) == {"id": "evt_01JBBBBBBBBBBBBBBBBBBBBBBB", "object": "event", "created_at": 1_795_000_002,
                                "type": "response.completed", "data": {"id": f"resp_{ULID}"}}
    secret = new_webhook_secret()
    headers = signed_headers(webhook_id=EVENT_ID, body=body, signing_secrets=[secret], timestamp=int(time.time()))
    assert isinstance(OpenAI(api_key="x", webhook_secret=secret).webhooks.unwrap(body, headers),
                      ResponseCompletedWebhookEvent)
    incomplete = event_payload(_job(JobStatus.completed, surface="responses", finish_reason="length"))
    headers = signed_headers(webhook_id=EVENT_ID, body=incomplete, signing_secrets=[secret], timestamp=int(time.time()))
    assert isinstance(OpenAI(api_key="x", webhook_secret=secret).webhooks.unwrap(incomplete, headers),
                      ResponseIncompleteWebhookEvent)


def test_a_jobs_body_keeps_aijobs_shape() -> None:
    payload = json.loads(event_payload(_job(JobStatus.completed)))
    assert set(payload) == {"type", "timestamp", "data"} and payload["data"]["id"] == f"job_{ULID}"


def test_each_destination_has_its_own_stable_webhook_id() -> None:
    event = new_webhook_id()
    assert destination_webhook_id(event, None) == event  # the callback_url keeps the event's own id
    at_endpoint = destination_webhook_id(event, ENDPOINT)
    assert at_endpoint == destination_webhook_id(event, ENDPOINT) != event
    assert at_endpoint != destination_webhook_id(event, "we_01JDDDDDDDDDDDDDDDDDDDDDDD")
    assert at_endpoint[:14] == event[:14]  # the event's time: ids still sort by it
    DeliveryMessage(job_id=f"job_{ULID}", webhook_id=at_endpoint, endpoint_id=ENDPOINT, attempt=1, first_attempt=1,
                    due_at=0)


def test_a_callback_urls_message_has_no_endpoint_field_so_a_sender_from_before_reads_it() -> None:
    message = DeliveryMessage(job_id=f"job_{ULID}", webhook_id=EVENT_ID, attempt=1, first_attempt=1, due_at=0)
    assert "endpoint_id" not in json.loads(message.model_dump_json(exclude_none=True))


def test_event_types_are_checked_and_deduplicated() -> None:
    assert check_event_types(["job.failed", "response.incomplete", "job.failed"]) == ["job.failed",
                                                                                      "response.incomplete"]
    with pytest.raises(InvalidRequest, match=r"'video\.completed'"):
        check_event_types(["video.completed"])
