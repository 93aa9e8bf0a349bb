"""Standard Webhooks: secrets, the payload of a job's final event, and its signed headers."""

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


def new_webhook_secret() -> str:
    """A ``whsec_`` secret: 32 random bytes, base64, as Standard Webhooks libraries expect."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def event_type(job: Job) -> str:
    return EVENT_TYPES[job.status]


def _iso(unix_s: int | None) -> str:
    return datetime.fromtimestamp(unix_s or 0, UTC).isoformat().replace("+00:00", "Z")


def event_payload(job: Job) -> bytes:
    """``{type, timestamp, data}``; ``data`` is the job exactly as ``GET /v1/jobs/{id}`` answers it.

    The same job state gives the same bytes, so every retry of one event carries the same body.
    """
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
