"""A tenant's usage, per UTC day (``GET /v1/usage``)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

from aijobs.models.tenants import Limits


class UsageDay(BaseModel):
    date: dt.date
    requests: int = Field(0, description="Authenticated requests (429s for the request rate excepted)")
    jobs: int = Field(0, description="Jobs admitted (submitted, retried, fired by a schedule)")
    input_tokens: int = Field(0, description="Of the jobs that ended this day (cancelled and failed ones included)")
    output_tokens: int = 0
    cost_usd: float = Field(0.0, description="The sum of the cost_usd of the jobs that ended this day")


class UsageReport(BaseModel):
    object: Literal["usage"] = "usage"
    limits: Limits
    today: UsageDay
    data: list[UsageDay] = Field(description="Every day of the range, oldest first, days without use as zeros")
