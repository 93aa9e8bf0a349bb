"""Standard Webhooks: secrets, the type and payload of a job's final event, and its signed headers.

A job made by ``POST /v1/jobs`` speaks aijobs' language (``job.*``, the job in ``data``); one made by
``POST /v1/responses`` speaks OpenAI's (``response.*``, ``{id, object: "event", created_at, type, data: {id}}``),
so that ``client.webhooks.unwrap()`` of the official SDK verifies and parses it. The signature is the same
Standard Webhooks scheme either way (OpenAI's is too).
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from aijobs.models.jobs import Job, JobStatus

SECRET_PREFIX = "whsec_"
USER_AGENT = "aijobs-webhooks/1"

EVENT_TYPES = {
    JobStatus.completed: "job.completed",
    JobStatus.failed: "job.failed",
    JobStatus.cancelled: "job.cancelled",
}
RESPONSE_EVENT_TYPES = {
    JobStatus.completed: "response.completed",
    JobStatus.failed: "response.failed",
    JobStatus.cancelled: "response.cancelled",
}


def new_webhook_secret() -> str:
    """A ``whsec_`` secret: 32 random bytes, base64, as Standard Webhooks libraries expect."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def event_type(job: Job) -> str:
    """The type of the job's final event; a response cut at ``max_output_tokens`` is ``response.incomplete``."""
    if job.surface != "responses":
        return EVENT_TYPES[job.status]
    if job.status is JobStatus.completed and job.finish_reason == "length":
        return "response.incomplete"
    return RESPONSE_EVENT_TYPES[job.status]


def response_id(job_id: str) -> str:
    """A response's id: ``resp_`` and its job's ULID."""
    return f"resp_{job_id.removeprefix('job_')}"


def event_id(job: Job) -> str:
    """The id in an OpenAI event's body: ``evt_`` and the ULID of the final event (one for every destination)."""
    return f"evt_{(job.webhook_event_id or '').removeprefix('msg_')}"


def _iso(unix_s: int | None) -> str:
    return datetime.fromtimestamp(unix_s or 0, UTC).isoformat().replace("+00:00", "Z")


def event_payload(job: Job) -> bytes:
    """A job's: ``{type, timestamp, data}``, ``data`` the job exactly as ``GET /v1/jobs/{id}`` answers it; a
    response's: OpenAI's event, ``data`` its id only (the receiver reads the response with ``GET``).

    The same job state gives the same bytes, so every retry of one event carries the same body.
    """
    payload: dict[str, object]
    if job.surface == "responses":
        payload = {"id": event_id(job), "object": "event", "created_at": job.completed_at or 0,
                   "type": event_type(job), "data": {"id": response_id(job.id)}}
    else:
        payload = {"type": event_type(job), "timestamp": _iso(job.completed_at),
                   "data": job.to_public().model_dump(mode="json")}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def signed_headers(*, webhook_id: str, body: bytes, signing_secrets: list[str], timestamp: int) -> dict[str, str]:
    """The Standard Webhooks headers; one ``v1,`` signature per active secret (two during a rotation)."""
    when = datetime.fromtimestamp(timestamp, UTC)
    text = body.decode()
    signatures = [Webhook(secret).sign(msg_id=webhook_id, timestamp=when, data=text) for secret in signing_secrets]
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
