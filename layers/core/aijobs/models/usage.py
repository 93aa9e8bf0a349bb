"""A tenant's usage, per UTC day (``GET /v1/usage``)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from aijobs.models.common import Model
from aijobs.models.tenants import Limits


class UsageDay(Model):
    date: dt.date
    requests: int = Field(0, description="Authenticated requests (429s for the request rate excepted)")
    jobs: int = Field(0, description="Jobs admitted (submitted, retried, fired by a schedule)")
    input_tokens: int = Field(0, description="Of the jobs that ended this day (cancelled and failed ones included)")
    output_tokens: int = 0
    cost_usd: float = Field(0.0, description="The sum of the cost_usd of the jobs that ended this day")


class UsageBudget(Model):
    """Today's spend against the tenant's daily budgets (UTC)."""

    spent_usd: float = Field(description="The cost_usd of the jobs that ended today plus the estimates of the jobs "
                                         "admitted today that have not ended")
    daily_cost_usd: float = Field(description="The hard budget: past it, new jobs are 429 quota_exceeded")
    daily_cost_soft_usd: float = Field(description="The soft budget: past it, answers carry x-aijobs-budget-warning")
    remaining_usd: float = Field(description="What is left of the hard budget (0 once it is reached)")
    soft_limit_reached: bool
    hard_limit_reached: bool
    resets_at: int = Field(description="Unix seconds: the next UTC midnight, when a new day's budget begins")


class UsageReport(Model):
    object: Literal["usage"] = "usage"
    limits: Limits
    today: UsageDay
    budget: UsageBudget
    data: list[UsageDay] = Field(description="Every day of the range, oldest first, days without use as zeros")
