"""Per-receiver slots: at most so many webhook attempts in flight to one receiver host from this process.

A receiver that accepts connections and never answers holds each attempt for the sender's whole deadline; without a
cap, one tenant's backlog to such a host fills every sender and the other tenants' webhooks wait behind it. The
count is per process (a Lambda container, or the local stack), shared by the batches its threads run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def receiver_host(url: str) -> str:
    """The receiver a callback URL reaches, as ``scheme://host:port`` (what the cap counts by)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # the guard refuses such a URL at send time; it still counts against its host
        port = None
    host = (parts.hostname or "").rstrip(".")
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port or DEFAULT_PORTS.get(scheme, 0)}"


class HostSlots:
    def __init__(self, per_host: int) -> None:
        self.per_host = per_host
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def take(self, url: str) -> Iterator[bool]:
        """Hold one of the URL's host slots while the block runs; yields False (holding none) when all are taken."""
        host = receiver_host(url)
        with self._lock:
            held = self._in_flight.get(host, 0)
            if held >= self.per_host:
                taken = False
            else:
                self._in_flight[host] = held + 1
                taken = True
        try:
            yield taken
        finally:
            if taken:
                with self._lock:
                    left = self._in_flight[host] - 1
                    if left:
                        self._in_flight[host] = left
                    else:
                        del self._in_flight[host]

    def in_flight(self, url: str) -> int:
        with self._lock:
            return self._in_flight.get(receiver_host(url), 0)
