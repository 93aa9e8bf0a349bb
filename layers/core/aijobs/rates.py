"""Admission against a tenant's rates: requests per minute (every authenticated request) and tokens per minute (every
job admitted), counted in DynamoDB (aijobs/usage.py), with OpenAI's ``x-ratelimit-*`` headers.

The windows are fixed UTC minutes. A job reserves its estimate at admission: its input tokens (``tokens.py``) plus
its ``max_output_tokens``, or ``DEFAULT_OUTPUT_TOKENS`` when it sets none; its real usage replaces the estimate when
it ends within the same minute.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from aijobs.errors import RateLimited
from aijobs.models.jobs import Job, Reservation
from aijobs.models.tenants import Limits
from aijobs.usage import Minute, Refused, UsageStore, Window

# What a job that sets no max_output_tokens reserves for its output (OpenAI's models stop far later, but most
# answers are far shorter: the real count replaces it when the job ends within the minute).
DEFAULT_OUTPUT_TOKENS = 4096


def duration(seconds: float) -> str:
    """A duration as OpenAI writes its resets: ``1s``, ``59s``, ``1m0s``, ``6m30s``.

    Examples
    --------
    >>> duration(0.2), duration(59), duration(60), duration(390)
    ('1s', '59s', '1m0s', '6m30s')
    """
    whole = max(1, math.ceil(seconds))
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


def rate_headers(limits: Limits, window: Window, now: float) -> dict[str, str]:
    """The ``x-ratelimit-*`` headers of an answer, from the window as the request left it."""
    reset = duration(window.minute.ends_at - now)
    return {
        "x-ratelimit-limit-requests": str(limits.requests_per_minute),
        "x-ratelimit-remaining-requests": str(max(0, limits.requests_per_minute - window.requests)),
        "x-ratelimit-reset-requests": reset,
        "x-ratelimit-limit-tokens": str(limits.tokens_per_minute),
        "x-ratelimit-remaining-tokens": str(max(0, limits.tokens_per_minute - window.tokens)),
        "x-ratelimit-reset-tokens": reset,
    }


# mypy reads aijobs.errors as Any (it resolves the package through ignore_missing_imports), hence the ignore
# The headers of the answer to the request being served (api/deps.py sets them, api/middleware.py sends them): a job
# admitted while it runs updates what they say of the tokens left. Unset outside a request (a schedule's fire).
ANSWER_HEADERS: ContextVar[dict[str, str] | None] = ContextVar("answer_rate_headers", default=None)


class OverRate(RateLimited):  # type: ignore[misc]
    """Refused by a rate: the window as it was, for the answer's headers."""

    def __init__(self, message: str, *, code: str, window: Window, retry_after: int | None,
                 retryable: bool = True) -> None:
        super().__init__(message, code=code, retry_after=retry_after, retryable=retryable)
        self.window = window


def _retry_after(window: Window, now: float) -> int:
    return max(1, math.ceil(window.minute.ends_at - now))


def estimated_tokens(job: Job) -> int:
    """What a job reserves: its input tokens (counted for OpenAI models, estimated for others) and its output cap."""
    from aijobs.tokens import input_tokens  # the tokenizer loads on the first admission, not at cold start

    return input_tokens(job.request, model=job.model) + (job.request.max_output_tokens or DEFAULT_OUTPUT_TOKENS)


@dataclass
class Limiter:
    usage: UsageStore
    limits: Callable[[str], Limits]  # TenantService.limits: the tenant's limits in force (cached per process)

    def count_request(self, tenant: str) -> tuple[Limits, Window]:
        """Count a request of the tenant; ``OverRate`` (``requests_per_minute``) past its limit."""
        limits = self.limits(tenant)
        try:
            return limits, self.usage.count_request(tenant, limit=limits.requests_per_minute)
        except Refused as refused:
            raise OverRate(f"over {limits.requests_per_minute} requests per minute; try again after Retry-After",
                           code="requests_per_minute", window=refused.window,
                           retry_after=_retry_after(refused.window, self.usage.now())) from None

    def reserve(self, job: Job) -> Reservation:
        """Reserve the job's estimated tokens in the minute; ``OverRate`` (``tokens_per_minute``) if they do not fit
        (not retryable when they could never fit: the job is larger than the tenant's whole minute)."""
        limits = self.limits(job.tenant)
        tokens = estimated_tokens(job)
        try:
            window, reservation = self.usage.reserve_tokens(job.tenant, tokens, limit=limits.tokens_per_minute)
        except Refused as refused:
            if tokens > limits.tokens_per_minute:
                raise OverRate(f"the job's estimate ({tokens} tokens) is over the {limits.tokens_per_minute} tokens "
                               "per minute this tenant may use: lower max_output_tokens or the input",
                               code="tokens_per_minute", window=refused.window, retry_after=None,
                               retryable=False) from None
            raise OverRate(f"the job's estimate ({tokens} tokens) does not fit in this minute's "
                           f"{limits.tokens_per_minute} tokens; try again after Retry-After", code="tokens_per_minute",
                           window=refused.window, retry_after=_retry_after(refused.window, self.usage.now())) from None
        if (headers := ANSWER_HEADERS.get()) is not None:
            headers["x-ratelimit-remaining-tokens"] = str(max(0, limits.tokens_per_minute - window.tokens))
        return reservation

    def release(self, tenant: str, reservation: Reservation, *, submitted: bool = False) -> None:
        """Give a reservation back to its minute (when that minute is still going on)."""
        if Minute.at(self.usage.now()) == Minute(dt.date.fromisoformat(reservation.day), reservation.minute):
            self.usage.release(tenant, reservation, submitted=submitted)
