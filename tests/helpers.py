"""Shared test helpers: real-shaped events from events/, waiting without sleeping blindly."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parents[1] / "events"


def load_event(name: str) -> dict[str, Any]:
    """A copy of events/<name>.json."""
    return copy.deepcopy(json.loads((EVENTS / f"{name}.json").read_text()))


def eventually[T](probe: Callable[[], T | None], *, timeout_s: float = 15, interval_s: float = 0.1) -> T:
    """Call probe until it returns something truthy, or fail after timeout_s (bounded, never a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(interval_s)


class MovableClock:
    """The real time plus however far a test has moved it on: what the services read "now" from in tests, so that
    a lease, a job or a secret expires by ``advance`` rather than by editing items."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds
