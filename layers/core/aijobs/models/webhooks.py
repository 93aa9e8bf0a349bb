"""Webhooks: a job's final event, its delivery attempts (the ledger), a tenant's signing secrets and endpoints."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import ConfigDict, Field

from aijobs.models.common import Model


class FinalEvent(Model):
    """The webhook event of a job's current terminal state: its id (stable across retries) and whether it is queued."""

    webhook_id: str
    enqueued: bool


class DeliveryAttempt(Model):
    """One attempt in the delivery ledger; ``outcome`` is ``sending`` while the request is in flight."""

    object: Literal["delivery_attempt"] = "delivery_attempt"
    webhook_id: str
    event_type: str
    # Where it went: a webhook endpoint (we_...), or null for the job's callback_url.
    endpoint_id: str | None = None
    attempt: int
    at: int
    # abandoned: its sender died mid-attempt (the receiver may have got it); a takeover of the attempt follows
    outcome: Literal["sending", "delivered", "retrying", "failed", "stopped", "abandoned"]
    status_code: int | None = None
    duration_ms: int | None = None
    error: str | None = None
    next_attempt_at: int | None = None


class DeliveryList(Model):
    object: Literal["list"] = "list"
    data: list[DeliveryAttempt]
    next_cursor: str | None


class RedeliveredTo(Model):
    """One destination a redelivery went to: its ``webhook-id`` (the same as the first time) and attempt."""

    endpoint_id: str | None  # null: the job's callback_url
    webhook_id: str
    attempt: int


class Redelivery(Model):
    """A redelivery to every destination of the final event; ``webhook_id`` and ``attempt`` are the first one's
    (the callback_url's when the job has one), ``deliveries`` lists them all."""

    object: Literal["redelivery"] = "redelivery"
    webhook_id: str
    attempt: int
    status: Literal["queued"] = "queued"
    deliveries: list[RedeliveredTo]


class WebhookSecret(Model):
    """A tenant's signing secret; ``expires_at`` is set once a rotation has replaced it."""

    id: str
    secret: str
    created_at: int
    expires_at: int | None = None


class WebhookSecretList(Model):
    object: Literal["list"] = "list"
    data: list[WebhookSecret]


class RotateSecretRequest(Model):
    model_config = ConfigDict(extra="forbid")

    # How long the previous secrets stay valid; unset, the deployment's default (24 h).
    overlap_s: Annotated[int | None, Field(ge=0, le=7 * 86_400)] = None


# The event types a webhook endpoint may subscribe to: a job's (POST /v1/jobs), and a response's in OpenAI's names.
EventType = Literal["job.completed", "job.failed", "job.cancelled", "response.completed", "response.failed",
                    "response.cancelled", "response.incomplete"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)


class WebhookEndpointCreate(Model):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Field(min_length=1, max_length=2048, description="Where the events go (https, public).")]
    # Validated by the service, so that an unknown type is a 422 that names it.
    event_types: Annotated[list[str], Field(min_length=1, max_length=len(EVENT_TYPES),
                                            description="The event types sent to it, e.g. response.completed.")]


class WebhookEndpoint(Model):
    """A tenant's webhook endpoint: every final event of the tenant's jobs whose type it subscribes to goes there."""

    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    url: str
    event_types: list[EventType]
    created_at: int


class WebhookEndpointList(Model):
    object: Literal["list"] = "list"
    data: list[WebhookEndpoint]
