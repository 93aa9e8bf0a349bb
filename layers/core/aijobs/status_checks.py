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
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aijobs.store import JobState, JobStore

# How long the first check of an instant waits for the others of that instant before reading.
GATHER_S = 0.02


class _Instant:
    """The checks of one event loop (a worker process may run several, one a thread) waiting for their read."""

    def __init__(self) -> None:
        self.waiting: dict[str, list[asyncio.Future[JobState | None]]] = {}
        self.reading: asyncio.Task[None] | None = None


class StatusChecks:
    def __init__(self, store: JobStore, *, period_s: float) -> None:
        self._store = store
        self.period_s = period_s
        # Each loop's own: its futures and its read belong to it (the local stack runs worker threads side by side).
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Instant] = weakref.WeakKeyDictionary()

    def next_check(self, now: float) -> float:
        """The next instant after ``now`` (monotonic seconds) at which the process's checks are made."""
        return (math.floor(now / self.period_s) + 1) * self.period_s

    async def state(self, job_id: str) -> JobState | None:
        """The job's state as read at this instant's check (None: it is gone)."""
        loop = asyncio.get_running_loop()
        instant = self._loops.get(loop)
        if instant is None:
            instant = self._loops[loop] = _Instant()
        answer: asyncio.Future[JobState | None] = loop.create_future()
        instant.waiting.setdefault(job_id, []).append(answer)
        if instant.reading is None or instant.reading.done():
            instant.reading = asyncio.create_task(self._read(instant))
        return await answer

    async def _read(self, instant: _Instant) -> None:
        """Read what is waiting, again and again while checks keep coming (one asked while a read is under way waits
        for the next), then end."""
        while instant.waiting:
            await asyncio.sleep(GATHER_S)
            waiting, instant.waiting = instant.waiting, {}
            try:
                states = await asyncio.to_thread(self._store.get_states, list(waiting))
            except Exception as exc:
                for answers in waiting.values():
                    for answer in answers:
                        if not answer.done():
                            answer.set_exception(exc)
                continue
            for job_id, answers in waiting.items():
                for answer in answers:
                    if not answer.done():  # (its call may have ended and stopped waiting)
                        answer.set_result(states.get(job_id))
