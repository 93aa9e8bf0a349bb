"""The worker's status checks while model calls run: one read for every running job of the process at a time.

Every ``period_s`` each running call asks whether its job is still its attempt's (a cancel, or a take-over, stops
it). The checks fall on the same instants for every job of the process (multiples of the period on the monotonic
clock), and those asked within ``GATHER_S`` of each other go in one ``BatchGetItem`` of the jobs' projected states
(up to 100 keys a call): a batch of ten running jobs costs one request a period instead of ten. The units are the
same (each job's projected state is one eventually consistent read).
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aijobs.store import JobState, JobStore

# How long the first check of an instant waits for the others of that instant before reading.
GATHER_S = 0.02


class StatusChecks:
    def __init__(self, store: JobStore, *, period_s: float) -> None:
        self._store = store
        self.period_s = period_s
        self._waiting: dict[str, list[asyncio.Future[JobState | None]]] = {}
        self._reading: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the checks of another loop (invocation) are its own

    def next_check(self, now: float) -> float:
        """The next instant after ``now`` (monotonic seconds) at which the process's checks are made."""
        return (math.floor(now / self.period_s) + 1) * self.period_s

    async def state(self, job_id: str) -> JobState | None:
        """The job's state as read at this instant's check (None: it is gone)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._waiting, self._reading = loop, {}, None
        answer: asyncio.Future[JobState | None] = loop.create_future()
        self._waiting.setdefault(job_id, []).append(answer)
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._read())
        return await answer

    async def _read(self) -> None:
        await asyncio.sleep(GATHER_S)
        waiting, self._waiting = self._waiting, {}
        try:
            states = await asyncio.to_thread(self._store.get_states, list(waiting))
        except Exception as exc:
            for answers in waiting.values():
                for answer in answers:
                    if not answer.done():
                        answer.set_exception(exc)
            return
        for job_id, answers in waiting.items():
            for answer in answers:
                if not answer.done():  # (its call may have ended and stopped waiting)
                    answer.set_result(states.get(job_id))
