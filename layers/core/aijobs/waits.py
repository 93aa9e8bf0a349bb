"""Waiting for jobs to end without holding a thread (``Prefer: wait``).

A waiter is a future on the event loop; one poller per process reads the status of every waited job in one
consistent ``BatchGetItem`` per interval (a projection: a few bytes a job; off the loop, briefly) and wakes the
waiters of the jobs that ended, which then read their job. Sixty waiters
cost one read per interval and no thread while they wait, so they never slow other requests. On Lambda an API
instance serves one request at a time: its one waiter polls alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial

import anyio.to_thread

from aijobs.models.jobs import Job
from aijobs.observability import logger
from aijobs.store import JobStore

FIRST_INTERVAL_S = 0.05
MAX_INTERVAL_S = 0.5


class JobWaits:
    def __init__(self, store: JobStore) -> None:
        self._store = store
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._interval_s = FIRST_INTERVAL_S

    @property
    def waiting(self) -> int:
        """How many requests wait now."""
        return sum(len(futures) for futures in self._waiters.values())

    async def wait(self, *, tenant: str, job_id: str, timeout_s: float) -> Job:
        """The tenant's job once it has ended, or as it is when ``timeout_s`` has passed."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new loop (Mangum may make one per invocation): the old waiters are gone
            self._loop, self._waiters, self._poller = loop, {}, None
        future: asyncio.Future[None] = loop.create_future()
        self._waiters.setdefault(job_id, []).append(future)
        self._interval_s = FIRST_INTERVAL_S  # a new waiter is looked at soon; then less and less often
        if self._poller is None or self._poller.done():
            self._poller = loop.create_task(self._poll())
        try:
            with contextlib.suppress(TimeoutError):  # the time is up: the job as it is now
                await asyncio.wait_for(future, timeout_s)
        finally:
            self._forget(job_id, future)
        return await anyio.to_thread.run_sync(partial(
            self._store.get_tenant_job, tenant=tenant, job_id=job_id, consistent=True))

    def _forget(self, job_id: str, future: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(job_id, [])
        with contextlib.suppress(ValueError):
            waiters.remove(future)
        if not waiters:
            self._waiters.pop(job_id, None)

    async def _poll(self) -> None:
        while self._waiters:
            await asyncio.sleep(self._interval_s)
            self._interval_s = min(self._interval_s * 1.5, MAX_INTERVAL_S)
            ids = list(self._waiters)
            try:
                found = await anyio.to_thread.run_sync(partial(self._store.get_states, ids, consistent=True))
            except Exception:
                logger.exception("waiters' read failed; trying again", extra={"jobs": len(ids)})
                continue
            for job_id in ids:
                state = found.get(job_id)
                if state is not None and not state.status.is_terminal:
                    continue
                for future in self._waiters.get(job_id, []):  # ended (or gone): its waiters read it
                    if not future.done():
                        future.set_result(None)
