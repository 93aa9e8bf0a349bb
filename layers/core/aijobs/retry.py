"""When to try again: a peer's ``Retry-After``, the worker's backoff, the webhook retry schedule."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

# The most a peer's Retry-After may postpone anything of ours.
MAX_RETRY_AFTER_S = 86_400


def retry_after_s(headers: Mapping[str, str], *, now: float | None = None) -> int | None:
    """Seconds a peer asks us to wait, from OpenAI's ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP
    date); None when it says nothing usable. Rounded up, never negative, at most a day.

    ``headers`` must look names up without regard to case, as httpx's headers do.

    Examples
    --------
    >>> retry_after_s({"retry-after": "7"}), retry_after_s({"retry-after-ms": "1500"})
    (7, 2)
    >>> retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0)
    10
    """
    if (millis := _number(headers.get("retry-after-ms"))) is not None:
        seconds: float | None = millis / 1000
    else:
        value = (headers.get("retry-after") or "").strip()
        seconds = _number(value)
        if seconds is None and value:
            try:
                seconds = parsedate_to_datetime(value).timestamp() - (time.time() if now is None else now)
            except (TypeError, ValueError):
                return None
    return None if seconds is None else min(MAX_RETRY_AFTER_S, max(0, math.ceil(seconds)))


def _number(value: str | None) -> float | None:
    try:
        number = float(value) if value else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


@dataclass(frozen=True)
class RetryPolicy:
    """The worker's backoff on retryable provider errors: exponential with jitter up to ``max_delay_s``, and never
    sooner than the provider asked; a provider that asks for more than ``max_retry_after_s`` fails the job."""

    max_attempts: int
    base_delay_s: float
    max_delay_s: int
    max_retry_after_s: int = 3600

    def delay_s(self, attempt: int, retry_after: int | None) -> int:
        backoff = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1) * random.uniform(1.0, 1.25))
        return int(max(backoff, retry_after or 0))


@dataclass(frozen=True)
class RetrySchedule:
    """The wait before each attempt of one webhook event (the first included), with up to 10 % jitter."""

    delays_s: tuple[int, ...]

    def next_delay_s(self, attempts_made: int, retry_after: int | None) -> int | None:
        """Seconds until the next attempt after ``attempts_made`` attempts, or None when the schedule is spent."""
        if attempts_made >= len(self.delays_s):
            return None
        if retry_after is not None:  # the receiver said when (429 / 503)
            return retry_after
        return round(self.delays_s[attempts_made] * random.uniform(1.0, 1.1))
