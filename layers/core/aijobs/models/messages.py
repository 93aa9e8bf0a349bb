"""What the queues carry: a job to run, a webhook attempt to make."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from aijobs.models.common import Model

JOB_ID_PATTERN = r"^job_[0-9A-Z]{26}$"


class JobMessage(Model):
    """The body of a jobs-queue message."""

    model_config = ConfigDict(extra="forbid")

    job_id: Annotated[str, Field(pattern=JOB_ID_PATTERN)]
    sent_at: float | None = None  # unix seconds; the message is sent before its job is stored


class DeliveryMessage(Model):
    """The body of a deliveries-queue message: one attempt of one event, due at a time (chained past SQS's 15 min)."""

    model_config = ConfigDict(extra="forbid")

    job_id: Annotated[str, Field(pattern=JOB_ID_PATTERN)]
    webhook_id: Annotated[str, Field(pattern=r"^msg_[0-9A-Z]{26}$")]
    # The webhook endpoint it goes to; None (left out of the body): the job's callback_url.
    endpoint_id: Annotated[str | None, Field(pattern=r"^we_[0-9A-Z]{26}$")] = None
    attempt: Annotated[int, Field(ge=1, le=1000)]
    first_attempt: Annotated[int, Field(ge=1, le=1000)]  # where this run of the retry schedule began
    due_at: float


