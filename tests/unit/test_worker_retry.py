from __future__ import annotations

import itertools

from aijobs.retry import RetryPolicy


def test_backoff_grows_with_each_attempt() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay_s=2, max_delay_s=300)
    delays = [policy.delay_s(attempt, None) for attempt in (1, 2, 3, 4)]
    assert delays[0] >= 2 and all(b > a for a, b in itertools.pairwise(delays))


def test_backoff_honours_the_providers_retry_after() -> None:
    assert RetryPolicy(max_attempts=5, base_delay_s=1, max_delay_s=300).delay_s(1, 60) >= 60


def test_our_backoff_is_capped_but_the_providers_retry_after_is_waited_for() -> None:
    policy = RetryPolicy(max_attempts=9, base_delay_s=100, max_delay_s=300)
    assert policy.delay_s(8, None) == 300
    assert policy.delay_s(1, 10_000) == 10_000  # sooner would only burn an attempt on another 429
