"""The clock that stores, services and the worker read "now" from: injected, so tests move time instead of
editing items (expire a lease, a job, a secret by advancing it)."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Unix time in seconds, as ``time.time`` gives it."""


def system_clock() -> float:
    return time.time()
