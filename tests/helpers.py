"""Shared test helpers: real-shaped events from events/, waiting without sleeping blindly, reading SSE."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
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


@dataclass
class SseEvent:
    """One server-sent event as a client sees it; ``comments`` are the comment lines read since the last event."""

    id: str | None = None
    event: str = "message"
    data: str = ""
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.data)


def read_sse(lines: Iterable[str]) -> Iterator[SseEvent]:
    """The events of a text/event-stream, as the HTML standard parses them (a blank line ends an event; a comment
    line starts with a colon); comments with no event after them come as a last event with only comments."""
    current, data = SseEvent(), []
    for line in lines:
        if not line:
            if data or current.id is not None:
                current.data = "\n".join(data)
                yield current
                current, data = SseEvent(), []
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if not name:
            current.comments.append(value)
        elif name == "data":
            data.append(value)
        elif name in ("id", "event"):
            setattr(current, name, value)
    if current.comments:
        yield current
