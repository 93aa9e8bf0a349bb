from __future__ import annotations

import pytest

from aijobs.api.routes.jobs import requested_wait
from aijobs.settings import WAIT_LIMIT_S


@pytest.mark.parametrize(("prefer", "query", "seconds"), [
    (None, None, 0),
    ("wait=5", None, 5),
    ("respond-async, wait=3", None, 3),
    ("WAIT = 4", None, 4),
    ("wait=500", None, WAIT_LIMIT_S),
    ("handling=lenient", None, 0),
    ("wait=5", 2, 2),
    (None, 9, 9),
    ("wait=" + "9" * 5000, None, WAIT_LIMIT_S),  # more digits than int() reads: was a 500
    ("wait=" + "0" * 5000 + "7", None, 7),
])
def test_wait_comes_from_prefer_or_query_and_is_capped(prefer: str | None, query: int | None, seconds: int) -> None:
    assert requested_wait(prefer, query) == seconds
