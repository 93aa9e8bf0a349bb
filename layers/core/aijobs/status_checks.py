"""Reads that many coroutines of a process ask at about the same time, made together: one call for all of them.

``Gathered``: the reads of one kind asked within ``GATHER_S`` of each other on one event loop go in one call of a
read of many keys (``BatchGetItem``, up to 100 keys a call); the units are the same (each key is one read), the
requests are not. The worker's status checks (``StatusChecks``), its batch's first reads and its concurrency slots'
and usage's writes (worker.py: a read of many keys can be a write of many, by tenant), and the streams' state reads
and chunk polls and the jobs of streams that open together (streams.py) use it, and so do the streamed jobs'
output pieces, written together (a write of many: ``BatchWriteItem``) at the same instants (``next_instant``), and
the request counts of an API server's concurrent requests (rates.py: one write a tenant).

``StatusChecks``: every ``period_s`` each running model call asks whether its job is still its attempt's (a cancel,
or a take-over, stops it). The checks fall on the same instants for every job of the process (multiples of the
period on the monotonic clock), so a batch of ten running jobs costs one request a period instead of ten.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aijobs.store import JobState, JobStore

# How long the first read of an instant waits for the others of that instant before reading.
GATHER_S = 0.02


class _Instant[K: Hashable, V]:
    """The reads of one event loop (a worker process may run several, one a thread) waiting for their call."""

    def __init__(self) -> None:
        self.waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        self.reading: asyncio.Task[None] | None = None


class Gathered[K: Hashable, V]:
    """``get(key)`` answers from one call of ``read`` (keys -> what was found of them, in a thread) for every key
    asked on the loop within ``window_s`` of the first; a key asked while a call is under way goes in the next one."""

    def __init__(self, read: Callable[[list[K]], Mapping[K, V]], *, window_s: float = GATHER_S) -> None:
        self._call = read
        # 0: the keys asked before the loop's next turn (a batch's tasks, started together, ask in one turn).
        self._window_s = window_s
        # Each loop's own: its futures and its call belong to it (the local stack runs worker threads side by side).
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Instant[K, V]] = (
            weakref.WeakKeyDictionary())

    async def get(self, key: K) -> V | None:
        """What the read found of ``key`` (None: nothing)."""
        loop = asyncio.get_running_loop()
        instant = self._loops.get(loop)
        if instant is None:
            instant = self._loops[loop] = _Instant()
        answer: asyncio.Future[V | None] = loop.create_future()
        instant.waiting.setdefault(key, []).append(answer)
        if instant.reading is None or instant.reading.done():
            instant.reading = asyncio.create_task(self._read(instant))
        return await answer

    async def _read(self, instant: _Instant[K, V]) -> None:
        """Read what is waiting, again and again while reads keep being asked, then end. Whatever ends it early (a
        cancel, a BaseException) ends every read waiting too: none is left waiting for an answer that never comes."""
        try:
            while instant.waiting:
                await asyncio.sleep(self._window_s)
                waiting, instant.waiting = instant.waiting, {}
                try:
                    found = await asyncio.to_thread(self._call, list(waiting))
                except Exception as exc:
                    _end(waiting, exc)
                    continue
                except BaseException as exc:
                    _end(waiting, exc)
                    raise
                for key, answers in waiting.items():
                    for answer in answers:
                        if not answer.done():  # (its asker may have stopped waiting)
                            answer.set_result(found.get(key))
        except BaseException as exc:
            waiting, instant.waiting = instant.waiting, {}
            _end(waiting, exc)
            raise


def _end[V](waiting: Mapping[Any, list[asyncio.Future[V]]], exc: BaseException) -> None:
    """Answer every waiting read with ``exc`` (cancelled, when it is a cancel)."""
    for answers in waiting.values():
        for answer in answers:
            if not answer.done():
                if isinstance(exc, asyncio.CancelledError):
                    answer.cancel()
                else:
                    answer.set_exception(exc)


def next_instant(now: float, period_s: float) -> float:
    """The next multiple of ``period_s`` after ``now`` on the monotonic clock: what every coroutine of the process
    does every ``period_s`` falls on the same instants, and so goes in one call."""
    return (math.floor(now / period_s) + 1) * period_s


class StatusChecks:
    def __init__(self, store: JobStore, *, period_s: float) -> None:
        self.period_s = period_s
        self._states = Gathered(store.get_states)

    def next_check(self, now: float) -> float:
        """The next instant after ``now`` (monotonic seconds) at which the process's checks are made."""
        return next_instant(now, self.period_s)

    async def state(self, job_id: str) -> JobState | None:
        """The job's state as read at this instant's check (None: it is gone)."""
        return await self._states.get(job_id)
