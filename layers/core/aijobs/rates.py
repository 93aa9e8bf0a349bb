"""Admission against a tenant's limits: requests per minute (every authenticated request), tokens per minute and the
daily cost budget (every job admitted), counted in DynamoDB (aijobs/usage.py), with OpenAI's ``x-ratelimit-*``
headers and aijobs' ``x-aijobs-budget-warning``.

The windows are fixed UTC minutes and days. A job reserves its estimate at admission: its input tokens
(``tokens.py``) plus its ``max_output_tokens``, or ``DEFAULT_OUTPUT_TOKENS`` when it sets none, and what they cost
at its model's price (pricing.py: a model without a known price at the fallback price, never free); its real
usage replaces the estimate when it ends (in the tokens' minute only while that minute lasts).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal

from aijobs.errors import QuotaExceeded, RateLimited
from aijobs.models.jobs import Job, Reservation
from aijobs.models.tenants import Limits
from aijobs.status_checks import Gathered
from aijobs.usage import Refused, UsageStore, Window, next_midnight

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


def budget_headers(limits: Limits, window: Window) -> dict[str, str]:
    """``x-aijobs-budget-warning`` once the day's spend has reached the soft budget: what was spent of which limit."""
    if window.spent_usd < Decimal(str(limits.daily_cost_soft_usd)):
        return {}
    return {"x-aijobs-budget-warning": f"spent_usd={window.spent_usd:.4f}; "
                                       f"daily_cost_soft_usd={limits.daily_cost_soft_usd:g}; "
                                       f"daily_cost_usd={limits.daily_cost_usd:g}"}


def answer_headers(limits: Limits, window: Window, now: float) -> dict[str, str]:
    """Every header an answer carries about the tenant's limits."""
    return rate_headers(limits, window, now) | budget_headers(limits, window)


# The headers of the answer to the request being served (api/deps.py sets them, api/middleware.py sends them): a job
# admitted while it runs updates what they say of the tokens left. Unset outside a request (a schedule's fire).
ANSWER_HEADERS: ContextVar[dict[str, str] | None] = ContextVar("answer_rate_headers", default=None)


class OverRate(RateLimited):
    """Refused by a rate: the window as it was, for the answer's headers."""

    def __init__(self, message: str, *, code: str, window: Window, retry_after: int | None,
                 retryable: bool = True) -> None:
        super().__init__(message, code=code, retry_after=retry_after, retryable=retryable)
        self.window = window

    @property
    def not_before(self) -> int | None:
        """When a job deferred by this refusal may be admitted (None: never, it does not fit any minute)."""
        return math.ceil(self.window.minute.ends_at) if self.retryable else None


class OverBudget(QuotaExceeded):
    """Refused by the daily budget: new jobs wait for the next UTC day."""

    def __init__(self, message: str, *, window: Window, not_before: int, retry_after: int) -> None:
        super().__init__(message, code="daily_budget", retry_after=retry_after)
        self.window = window
        self.not_before = not_before


def _retry_after(window: Window, now: float) -> int:
    return max(1, math.ceil(window.minute.ends_at - now))


def estimate(job: Job) -> tuple[int, Decimal]:
    """What a job reserves: its input tokens (counted for OpenAI models, estimated for others) and its output cap
    (an embedding job makes no output tokens), and what they would cost (an image job: its images)."""
    from aijobs.pricing import estimate_cost, image_cost
    from aijobs.tokens import input_tokens  # the tokenizer loads on the first admission, not at cold start

    request = job.request
    read = input_tokens(request, model=job.model)
    if request.kind == "image":  # priced per image (unless its model reports image tokens: then by them, later)
        return read, image_cost(job.model, size=request.size, count=request.n or 1).cost_usd
    made = 0 if request.kind in ("embedding", "ingest") else request.max_output_tokens or DEFAULT_OUTPUT_TOKENS
    return read + made, estimate_cost(job.model, input_tokens=read, output_tokens=made).cost_usd


@dataclass
class Limiter:
    usage: UsageStore
    limits: Callable[[str], Limits]  # TenantService.limits: the tenant's limits in force (cached per process)
    # The requests a process serves at once, counted together (``count``).
    _counts: Gathered[tuple[str, int], tuple[Limits, Window] | OverRate] = field(init=False, repr=False)
    _numbers: Iterator[int] = field(default_factory=itertools.count, init=False, repr=False)

    def __post_init__(self) -> None:
        self._counts = Gathered(self._count_gathered, window_s=0)

    async def count(self, tenant: str) -> tuple[Limits, Window]:
        """``count_request`` for a request served on an event loop. The requests of one tenant that a server takes
        at once (those that arrive in the same turn of its loop, or while a count of theirs is being written) are
        counted in one write: 100 streams opened together made 100 writes of the tenant's day item, now a few. In
        AWS an instance serves one request at a time: each is counted alone, as before."""
        outcome = await self._counts.get((tenant, next(self._numbers)))
        if isinstance(outcome, OverRate):
            raise outcome
        assert outcome is not None  # _count_gathered answers every key
        return outcome

    def _count_gathered(self, keys: list[tuple[str, int]]) -> dict[tuple[str, int], tuple[Limits, Window] | OverRate]:
        by_tenant: dict[str, list[tuple[str, int]]] = {}
        for key in keys:
            by_tenant.setdefault(key[0], []).append(key)
        return {key: outcome for tenant, tenant_keys in by_tenant.items()
                for key, outcome in zip(tenant_keys, self.count_requests(tenant, len(tenant_keys)), strict=True)}

    def count_requests(self, tenant: str, count: int) -> list[tuple[Limits, Window] | OverRate]:
        """Count ``count`` requests of the tenant: in one write when all of them fit in the minute, else one by one
        (those past the limit get their ``OverRate``, as each would alone)."""
        if count > 1:
            limits = self.limits(tenant)
            try:
                window = self.usage.count_request(tenant, limit=limits.requests_per_minute, count=count)
            except Refused:
                pass
            else:
                return [(limits, window)] * count
        outcomes: list[tuple[Limits, Window] | OverRate] = []
        for _ in range(count):
            try:
                outcomes.append(self.count_request(tenant))
            except OverRate as refused:
                outcomes.append(refused)
        return outcomes

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
        """Reserve the job's estimated tokens in the minute and its estimated cost in the day; ``OverRate``
        (``tokens_per_minute``) if the tokens do not fit (not retryable when they never could: the job is larger
        than the tenant's whole minute), ``OverBudget`` once the day's spend has reached the hard budget."""
        tokens, cost = estimate(job)
        now = self.usage.now()
        try:
            (reservation,) = self._reserve(job.tenant, [(tokens, cost)], now)
        except Refused as refused:
            raise self._refusal(self.limits(job.tenant), tokens, refused.window, now) from None
        return reservation

    def reserve_all(self, jobs: list[Job]) -> list[Reservation] | None:
        """Reserve one tenant's jobs (a batch) in one write, each with its own reservation, when every one of them
        would be admitted; None (nothing reserved) when any would not: then ``reserve`` each, to admit those that
        fit and tell the others why not. A batch of 100 jobs made 100 writes of the tenant's day item; now one."""
        try:
            return self._reserve(jobs[0].tenant, [estimate(job) for job in jobs], self.usage.now())
        except Refused:
            return None

    def _reserve(self, tenant: str, estimates: list[tuple[int, Decimal]], now: float) -> list[Reservation]:
        """The estimates reserved in one write (``Refused``: none), the answer's rate headers set."""
        limits = self.limits(tenant)
        window, reservations = self.usage.reserve_all(tenant, estimates=estimates,
                                                      token_limit=limits.tokens_per_minute,
                                                      budget_usd=Decimal(str(limits.daily_cost_usd)))
        if (headers := ANSWER_HEADERS.get()) is not None:
            headers.update(answer_headers(limits, window, now))
        return reservations

    @staticmethod
    def _refusal(limits: Limits, tokens: int, window: Window, now: float) -> OverRate | OverBudget:
        if window.spent_usd >= Decimal(str(limits.daily_cost_usd)):
            resets_at = next_midnight(window.minute.day)
            return OverBudget(f"this tenant's daily budget of {limits.daily_cost_usd:g} USD is spent "
                              f"({window.spent_usd:.4f} USD today); new jobs are admitted from the next UTC day, "
                              "after Retry-After", window=window, not_before=resets_at,
                              retry_after=max(1, math.ceil(resets_at - now)))
        if tokens > limits.tokens_per_minute:
            return OverRate(f"the job's estimate ({tokens} tokens) is over the {limits.tokens_per_minute} tokens "
                            "per minute this tenant may use: lower max_output_tokens or the input",
                            code="tokens_per_minute", window=window, retry_after=None, retryable=False)
        return OverRate(f"the job's estimate ({tokens} tokens) does not fit in this minute's "
                        f"{limits.tokens_per_minute} tokens; try again after Retry-After", code="tokens_per_minute",
                        window=window, retry_after=_retry_after(window, now))

    def release(self, tenant: str, reservation: Reservation, *, submitted: bool = False) -> None:
        """Give a reservation back to its minute (when that minute is still going on)."""
        self.usage.release(tenant, reservation, submitted=submitted)
