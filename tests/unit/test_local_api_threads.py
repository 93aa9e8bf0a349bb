"""make run's API serves many requests' blocking calls at once (100 streams opened together), not anyio's 40."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import anyio.to_thread

from aijobs.local.stack import API_THREADS, with_threads

CALLS = 60  # more than anyio's default of 40 threads


def test_the_local_api_runs_more_blocking_calls_at_once_than_anyio_s_default() -> None:
    together = threading.Barrier(CALLS, timeout=10)  # broken unless every call runs at the same time

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await anyio.to_thread.run_sync(together.wait)

    served = with_threads(app, API_THREADS)

    async def main() -> None:
        await asyncio.gather(*(served({"type": "http"}, None, None) for _ in range(CALLS)))

    asyncio.run(main())
    assert API_THREADS >= 100 + 10
