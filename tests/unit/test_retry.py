"""One Retry-After parser for the model provider and the webhook sender."""

from __future__ import annotations

import pytest

from aijobs.retry import MAX_RETRY_AFTER_S, retry_after_s

NOW = 1_445_412_470.0  # 2015-10-21 07:27:50 UTC


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"retry-after": "7"}, 7),
    ({"retry-after": " 2.5 "}, 3),
    ({"retry-after-ms": "1500"}, 2),
    ({"retry-after-ms": "250", "retry-after": "9"}, 1),  # OpenAI's milliseconds win over the rounded seconds
    ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 10),
    ({"retry-after": "Wed, 21 Oct 2015 07:00:00 GMT"}, 0),  # a date in the past: at once
    ({"retry-after": "-5"}, 0),
    ({"retry-after": str(10**9)}, MAX_RETRY_AFTER_S),
    ({"retry-after": "soon"}, None),
    ({"retry-after": "nan"}, None),
    ({"retry-after-ms": "x"}, None),
    ({}, None),
])
def test_retry_after_reads_seconds_dates_and_openais_milliseconds(headers: dict[str, str], seconds: int | None) -> None:
    assert retry_after_s(headers, now=NOW) == seconds
