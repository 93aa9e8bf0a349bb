"""A job's events, read from DynamoDB: what ``GET /v1/jobs/{id}/stream`` sends, in a neutral form.

The events of a job, each with an integer id that only grows and that any reader derives the same way from what
is stored, so any API instance serves any stream, and a resume after event N sends exactly what follows N:

- ``status`` ``queued``: id 1;
- per attempt A (1, 2, ...): ``status`` ``in_progress`` with the attempt, id A * SPAN; then its output log's chunks
  (the worker flushes them while the model streams), one ``delta`` each, id A * SPAN + k for chunk k;
- at the end, for the last attempt A: a ``delta`` with the output the log lacks (what the model made after the
  last flush), id (A + 1) * SPAN - 2, then the final event (the whole job), id (A + 1) * SPAN - 1.

An attempt that follows a failed one starts its output again: its ``status`` event says which attempt the deltas
after it belong to. A stream reads the output log by key (the chunks after the last one it sent, never a Query):
while the job runs, one read of the next chunk's key per poll (at once again when it was there; when it joins an
attempt whose log holds that key, the rest of what it holds in windows of keys) and one projected read of the job's
state every ``STATE_EVERY_S``; once it has ended, consistent reads of what is left.
The polls and the state reads of every stream a process serves fall on the same instants, and each kind goes in
one ``BatchGetItem`` (as the worker's status checks do, status_checks.py), as do the whole jobs read when streams
open or their jobs end together: 100 streams of one API server cost two requests an instant, not 100 or 200, for
the same units (in AWS the stream function serves one stream an instance: its reads are those of one stream).
Encoders (SSE here, OpenAI's ``response.*`` events later) turn these events into their own framing.

A job may wait in its queue for a while (the worker's batches are all busy, or its tenant's slots): a follower that
asks for it (``waiting_every``) gets a ``waiting`` note every so often while the job is queued and nothing else
happens. A note is not an event: it has no id, is not stored, and a resume never replays it (SSE sends it as a
comment), but it shows the client that the stream is alive and why it is quiet.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

import anyio.to_thread

from aijobs.clock import Clock, system_clock
from aijobs.models.jobs import Job, JobStatus
from aijobs.status_checks import Gathered, StatusChecks
from aijobs.store import WATCH_RENEW_S, JobStore, owned

# Event ids per attempt: an attempt's chunks never come near it (the worker flushes a few times a second, for at
# most the job's timeout).
SPAN = 1_000_000
QUEUED_ID = 1
# How often a queued job's stream says that it still waits (a follower that asks for notes).
WAITING_NOTE_S = 1.0
# How often a running job's state is read (for a new attempt or its end) while chunks are polled for.
STATE_EVERY_S = 0.5
# A job cancelled while it ran: its worker records the output, usage and cost of the stopped call within a second
# or two (it reads the status every 0.5 s, and counts the usage with a tokenizer it may have to load first); the
# final event waits for that record, until this long after the cancel at most (a dead worker records nothing).
CANCEL_SETTLE_S = 10


@dataclass(frozen=True)
class JobEvent:
    id: int
    kind: Literal["status", "delta", "final", "waiting"]  # waiting: a note, not an event (its id is 0)
    status: JobStatus
    attempt: int = 0
    text: str = ""
    job: Job | None = None  # the final event's


def final_ids(attempt: int) -> tuple[int, int]:
    """The ids of the last delta and of the final event of a job whose last attempt is ``attempt``."""
    return (attempt + 1) * SPAN - 2, (attempt + 1) * SPAN - 1


class JobEvents:
    def __init__(self, store: JobStore, *, poll_s: float, clock: Clock = system_clock) -> None:
        self._store = store
        self._poll_s = poll_s
        self._clock = clock
        self._states = StatusChecks(store, period_s=STATE_EVERY_S)
        # the next chunk of every live stream's log, read together (JobStore.output_texts)
        self._polls = Gathered(store.output_texts)
        # whole jobs, read consistently: those of the streams that open at once, or whose jobs have ended, together
        self._jobs: Gathered[str, Job] = Gathered(lambda ids: store.get_jobs(ids, consistent=True), window_s=0)

    async def open(self, *, tenant: str, job_id: str) -> Job:
        """The tenant's job as its stream opens (read consistently); ``NotFound`` when it has none of that id."""
        return owned(await self._jobs.get(job_id) if job_id.startswith("job_") else None, tenant)

    async def follow(self, job: Job, *, after: int = 0, until: float = math.inf,
                     waiting_every: float | None = None) -> AsyncIterator[JobEvent]:
        """The job's events with ids over ``after``, as they happen, until the final one (then the iterator ends)
        or until ``until`` (``time.monotonic()``) has passed while the job runs.

        ``job`` is the job as read (consistently) when the stream was opened. With ``waiting_every``, a ``waiting``
        note (id 0) that often while the job is queued and nothing else was sent.
        """
        if after < QUEUED_ID:
            yield JobEvent(QUEUED_ID, "status", JobStatus.queued)
        attempt, seq = divmod(max(after, 0), SPAN)
        if seq >= SPAN - 2:  # the last delta or the final event was sent: the job has ended
            seq = SPAN
        next_state = self._states.next_check(time.monotonic())
        every = waiting_every or 0.0
        next_note = time.monotonic() + every if every else math.inf
        joined = 0  # the attempt whose log this stream has caught up with
        while True:
            if job.status.is_terminal and not self._settling(job):
                async for event in self._finish(job, attempt, seq, after):
                    yield event
                return
            if job.attempt > attempt:  # a new attempt: what is left of the earlier ones, then its status
                async for event in self._rest_of_attempts(job, attempt, seq):
                    yield event
                attempt, seq = job.attempt, 0
                yield JobEvent(attempt * SPAN, "status", JobStatus.in_progress, attempt=attempt)
            if not attempt:
                chunks = []
            else:  # one key a poll, with the other streams' (at once again when it was there)
                text = await self._polls.get((job.id, attempt, seq + 1))
                chunks = [] if text is None else [text]
                if chunks and joined != attempt:  # joining: the rest of what the log holds, in windows of 2, 4, ...
                    chunks += await self._chunks(job.id, attempt, seq + 1, first_window=2)
                joined = attempt
            for text in chunks:
                seq += 1
                yield JobEvent(attempt * SPAN + seq, "delta", JobStatus.in_progress, attempt=attempt, text=text)
            noting = every > 0 and job.status is JobStatus.queued
            if noting and time.monotonic() >= next_note:
                next_note = time.monotonic() + every
                yield JobEvent(0, "waiting", JobStatus.queued, attempt=job.attempt)
            if (now := time.monotonic()) >= next_state:
                next_state = self._states.next_check(now)
                read = asyncio.ensure_future(self._read(job))
                try:  # a queued job's notes keep their pace, however long the read takes
                    while noting and not (await asyncio.wait({read}, timeout=next_note - time.monotonic()))[0]:
                        next_note = time.monotonic() + every
                        yield JobEvent(0, "waiting", JobStatus.queued, attempt=job.attempt)
                    current = await read
                finally:
                    read.cancel()  # the stream has gone (nothing when the read is done)
                if current is None:
                    return  # expired meanwhile (a job kept for days): there is nothing more to send
                job = current
            if not chunks:
                if (now := time.monotonic()) >= until:
                    return
                # The next poll on the process's instants (multiples of poll_s): the streams' polls go together.
                await anyio.sleep((math.floor(now / self._poll_s) + 1) * self._poll_s - now)

    def _settling(self, job: Job) -> bool:
        """A job cancelled while it ran, whose worker has not yet recorded the stopped call (and may still)."""
        return (job.status is JobStatus.cancelled and job.attempt > 0 and job.usage is None
                and self._clock() - (job.completed_at or 0) < CANCEL_SETTLE_S)

    async def _read(self, job: Job) -> Job | None:
        """The job's status and attempt; the whole job (consistent) once it has ended; None once it is gone."""
        state = await self._states.state(job.id)
        if state is None:
            return None
        if state.status.is_terminal:  # (with the other streams' jobs that have ended or opened meanwhile)
            return await self._jobs.get(job.id)
        job = job.model_copy(update={"status": state.status, "attempt": state.attempt})
        if state.status is JobStatus.in_progress and not job.request.stream and (
                state.watched_at is None or self._clock() - state.watched_at >= WATCH_RENEW_S):
            # Streamed while it runs: its worker flushes its output while someone looks (worker._call_model).
            await anyio.to_thread.run_sync(self._store.mark_watched, job)
        return job

    async def _chunks(self, job_id: str, attempt: int, after: int, *, limit: int | None = None,
                      consistent: bool = False, first_window: int = 4) -> list[str]:
        chunks = await anyio.to_thread.run_sync(lambda: self._store.output_chunks(
            job_id, attempt, after=after, limit=limit, consistent=consistent, first_window=first_window))
        return [chunk.text for chunk in chunks]

    async def _rest_of_attempts(self, job: Job, attempt: int, seq: int) -> AsyncIterator[JobEvent]:
        """The chunks of the attempts before the job's current one that were not sent, with their status events."""
        for number in range(max(attempt, 1), job.attempt):
            if number > attempt:
                seq = 0
                yield JobEvent(number * SPAN, "status", JobStatus.in_progress, attempt=number)
            async for event in self._log(job.id, number, seq):
                yield event

    async def _log(self, job_id: str, attempt: int, seq: int, *, last: int | None = None) -> AsyncIterator[JobEvent]:
        """An attempt's chunks after ``seq`` (up to ``last`` when known), read consistently: it has ended."""
        if last is not None and seq >= last:
            return
        for text in await self._chunks(job_id, attempt, seq, limit=None if last is None else last - seq,
                                       consistent=True):
            seq += 1
            yield JobEvent(attempt * SPAN + seq, "delta", JobStatus.in_progress, attempt=attempt, text=text)

    async def _finish(self, job: Job, attempt: int, seq: int, after: int) -> AsyncIterator[JobEvent]:
        """The events of an ended job that follow (attempt, seq): what is left of its logs, the output the log
        lacks, and the final event."""
        if seq < SPAN and job.attempt:
            if job.attempt > attempt:
                async for event in self._rest_of_attempts(job, attempt, seq):
                    yield event
                seq = 0
                yield JobEvent(job.attempt * SPAN, "status", JobStatus.in_progress, attempt=job.attempt)
            last = job.output_seq if job.output_logged_chars is not None else None
            async for event in self._log(job.id, job.attempt, seq, last=last):
                yield event
        rest_id, final_id = final_ids(job.attempt)
        rest = (job.output_text or "")[job.output_logged_chars or 0:] if job.output_logged_chars is not None else ""
        if rest and after < rest_id:
            yield JobEvent(rest_id, "delta", job.status, attempt=job.attempt, text=rest)
        if after < final_id:
            yield JobEvent(final_id, "final", job.status, attempt=job.attempt, job=job)
