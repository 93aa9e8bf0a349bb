"""Webhooks: a job's final event, its delivery attempts (the ledger), and a tenant's signing secrets."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class FinalEvent(BaseModel):
    """The webhook event of a job's current terminal state: its id (stable across retries) and whether it is queued."""

    webhook_id: str
    enqueued: bool


class DeliveryAttempt(BaseModel):
    """One attempt in the delivery ledger; ``outcome`` is ``sending`` while the request is in flight."""

    object: Literal["delivery_attempt"] = "delivery_attempt"
    webhook_id: str
    event_type: str
    attempt: int
    at: int
    # abandoned: its sender died mid-attempt (the receiver may have got it); a takeover of the attempt follows
    outcome: Literal["sending", "delivered", "retrying", "failed", "stopped", "abandoned"]
    status_code: int | None = None
    duration_ms: int | None = None
    error: str | None = None
    next_attempt_at: int | None = None


class DeliveryList(BaseModel):
    object: Literal["list"] = "list"
    data: list[DeliveryAttempt]
    next_cursor: str | None


class Redelivery(BaseModel):
    object: Literal["redelivery"] = "redelivery"
    webhook_id: str
    attempt: int
    status: Literal["queued"] = "queued"


class WebhookSecret(BaseModel):
    """A tenant's signing secret; ``expires_at`` is set once a rotation has replaced it."""

    id: str
    secret: str
    created_at: int
    expires_at: int | None = None


class WebhookSecretList(BaseModel):
    object: Literal["list"] = "list"
    data: list[WebhookSecret]


class RotateSecretRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # How long the previous secrets stay valid; unset, the deployment's default (24 h).
    overlap_s: Annotated[int | None, Field(ge=0, le=7 * 86_400)] = None
