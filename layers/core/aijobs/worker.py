"""The worker: runs one job by id (claim, call the model, record the outcome) and says what should happen next.

It never sees SQS: ``run(job_id)`` answers an ``Outcome`` and sqs_batch.py applies it to the message. Many jobs
run concurrently on one event loop; DynamoDB and SQS calls (boto3, blocking) go to threads so they never hold it.

What the worker promises, whatever fails (the sweeper covers what a dead process cannot):
- a job runs at most once per attempt: claims are conditional, and a duplicate message of a running job waits
  for its lease instead of being dropped;
- a job whose worker died is taken over once its lease has run out, and runs alone, after the other jobs of its
  batch, so that a job that kills the process costs only its own attempts;
- every job ends within ``max_attempts``; a failed job's error is final (``retryable: false``);
- at most a tenant's ``concurrent_jobs`` run at once (concurrency.py): a job over it stays queued, parked in the
  table with its message deleted (so waiting never walks it toward the dead-letter queue, nor cycles it through
  the queue ahead of other tenants' messages), and is sent again when one of its tenant's slots frees.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import json
import math
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from aijobs.clock import Clock, system_clock
from aijobs.concurrency import Slot
from aijobs.errors import AijobsError, OutputInvalid, ProviderError, ProviderTimeout
from aijobs.models.jobs import Job, JobStatus, Progress, StatusDetails, Usage
from aijobs.observability import count, log_context, logger
from aijobs.outcomes import DONE, Outcome, RetryIn
from aijobs.pricing import Price, estimate_cost, image_cost
from aijobs.providers import ModelProvider
from aijobs.queues import MAX_DELAY_S
from aijobs.retry import RetryPolicy
from aijobs.status_checks import Gathered, StatusChecks, next_instant
from aijobs.store import WATCHED_FOR_S, Claim, JobStore, OutputPiece, RunRecord, Spent
from aijobs.structured import check_output
from aijobs.tokens import stopped_call_usage
from aijobs.usage import JobEnd

if TYPE_CHECKING:
    from decimal import Decimal

    from aijobs.concurrency import TenantSlots, WaitingJobs
    from aijobs.documents import DocumentIndexer
    from aijobs.models.jobs import Priority
    from aijobs.queues import JobQueue
    from aijobs.rates import Limiter
    from aijobs.store import JobState
    from aijobs.usage import UsageStore
    from aijobs.webhooks.outbox import WebhookOutbox

ATTEMPTS_EXHAUSTED = AijobsError("the job did not finish within its attempts", code="attempts_exhausted")
# A message can reach the worker before its job is stored (the message is sent first): it is tried again this
# long after it was sent before the job counts as never stored.
MISSING_JOB_GRACE_S = 30
# A message younger than YOUNG_MESSAGE_S whose job is not found yet: its job is read again after each of these waits.
YOUNG_MESSAGE_S = 2.0
MISSING_JOB_WAITS_S = (0.1, 0.2, 0.4)
# A duplicate message of a running job comes back this long after the running attempt's lease ends.
LEASE_MARGIN_S = 5
# While a model call runs: how often a `stream: true` job's output so far is flushed to its output log (one chunk
# write: at most 4 a second), how often any other job's is, and how often the worker reads the job's status; a
# cancel stops the call within about the latter.
FLUSH_S = 0.25
QUIET_FLUSH_S = 1.0
CANCEL_CHECK_S = 0.5
# Texts per embeddings call: OpenAI takes up to 2,048 inputs and 300,000 tokens in one request; 512 texts of an
# embedding job's (at most 32,000 characters each, 100,000 in all) stay within both.
EMBED_BATCH = 512
# The concurrency slot of the job a task runs (``_run_in_slot``), until it is given back.
_HELD: contextvars.ContextVar[list[Slot]] = contextvars.ContextVar("aijobs_held_slot")


@dataclass
class _OutputLog:
    """How far a model call's output log goes: its last chunk, and the characters its chunks hold."""

    seq: int = 0
    chars: int = 0


@dataclass(frozen=True)
class Made:
    """What an attempt's model call(s) made: a text job's output text, or an embedding or image job's files."""

    text: str | None
    usage: Usage
    model: str
    finish_reason: str | None = None
    files: tuple[str, ...] = ()
    dimensions: int | None = None
    backend: str | None = None  # which model backend answered, and the fallback model when not the job's own
    fallback_model: str | None = None


def _price(job: Job, usage: Usage, *, served_by: str | None = None) -> Price:
    """What an attempt's usage costs: tokens at the model's prices; images by their tokens, or per image. A fallback
    model that answered (``served_by``, aijobs/backends.py) is what the call cost."""
    model = served_by or job.model
    if job.request.kind == "image":
        return image_cost(model, size=job.request.size, count=usage.images or 0,
                          input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
    return estimate_cost(model, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)


@dataclass(frozen=True)
class Stopped:
    """A model call closed before its end because the job was cancelled: what the model had made by then."""

    text: str


class _Isolation:
    """Per event loop: a job taken over from a dead worker waits until the batch's other jobs are done, then runs
    alone, one at a time; if it kills the process again, nothing else is lost with it."""

    def __init__(self) -> None:
        self.ordinary = 0
        self.idle = asyncio.Condition()
        self.alone = asyncio.Lock()
        self.started = time.monotonic()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        if self.ordinary == 0:
            self.started = time.monotonic()  # a new batch
        self.ordinary += 1
        try:
            yield
        finally:
            self.ordinary -= 1
            async with self.idle:
                self.idle.notify_all()

    @asynccontextmanager
    async def isolated(self) -> AsyncIterator[None]:
        async with self.idle:
            await self.idle.wait_for(lambda: self.ordinary == 0)
        async with self.alone:
            yield


@dataclass(frozen=True, eq=False)
class _SlotAsk:
    """One job's ask for a slot of its tenant (each ask is its own, even for a duplicate message of one job)."""

    tenant: str


@dataclass(frozen=True, eq=False)
class _UsageAsk:
    """One ended attempt's usage, to count for its tenant."""

    tenant: str
    job_id: str
    end: JobEnd


class _OfTenant(Protocol):
    @property
    def tenant(self) -> str: ...


def _by_tenant[T: _OfTenant](items: list[T]) -> dict[str, list[T]]:
    grouped: dict[str, list[T]] = {}
    for item in items:
        grouped.setdefault(item.tenant, []).append(item)
    return grouped


class Worker:
    def __init__(self, *, store: JobStore, provider: ModelProvider, retry: RetryPolicy, lease_s: int,
                 outbox: WebhookOutbox | None = None, clock: Clock = system_clock,
                 cancel_check_s: float = CANCEL_CHECK_S, flush_s: float = FLUSH_S,
                 slots: TenantSlots | None = None, waiting: WaitingJobs | None = None,
                 concurrent_jobs: Callable[[str], int] | None = None, usage: UsageStore | None = None,
                 limiter: Limiter | None = None, queue: JobQueue | None = None, output_retries: int = 1,
                 embed_batch: int = EMBED_BATCH, documents: DocumentIndexer | None = None) -> None:
        self.store = store
        self.documents = documents  # indexes an ingest job's documents (documents.py)
        # How many times a job runs again after an output that did not match its response_format, and how many
        # texts of an embedding job go in one call.
        self.output_retries = output_retries
        self.embed_batch = embed_batch
        # The tenants' concurrency slots, their parked jobs, and a tenant's limit; without them no limit is kept.
        self.slots = slots if concurrent_jobs is not None and waiting is not None else None
        self.waiting = waiting
        self.concurrent_jobs = concurrent_jobs
        self.provider = provider
        self.retry = retry
        self.lease_s = lease_s
        self.cancel_check_s = cancel_check_s
        self.status_checks = StatusChecks(store, period_s=cancel_check_s)
        # A batch's jobs, started together, gather their first reads and their slots' and usage's writes
        # (status_checks.py).
        self._states = Gathered(store.get_states, window_s=0)
        self._slot_takes = Gathered(self._take_slots, window_s=0)
        self._slot_gives = Gathered(self._give_back_slots)
        self._usage_counts = Gathered(self._count_usages)
        self._output_writes = Gathered(store.append_outputs, window_s=0)  # flushes fall on the same instants
        self.flush_s = flush_s
        self.outbox = outbox
        self.clock = clock
        self.usage = usage
        # Admits a job deferred by its tenant's token rate or budget when it comes due; one still over its limit is
        # deferred again, its message sent delayed to when it may start.
        self.limiter = limiter
        self.queue = queue
        self._isolations: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Isolation] = (
            weakref.WeakKeyDictionary())

    def _isolation(self) -> _Isolation:
        loop = asyncio.get_running_loop()
        if loop not in self._isolations:
            self._isolations[loop] = _Isolation()
        return self._isolations[loop]

    async def run(self, job_id: str, *, sent_at: float | None = None) -> Outcome:
        """Claim the job and run it; ``sent_at`` is when its message was sent (a message may arrive first)."""
        isolation = self._isolation()
        async with isolation.running():
            claimed = await self._claim_in_slot(job_id, sent_at)
            if not isinstance(claimed, tuple):
                return claimed  # parked
            claim, slot = claimed
            if claim.job is not None:
                return await self._run_in_slot(claim.job, slot)
        current = claim.current
        if current is None:
            return self._missing(job_id, sent_at)
        if current.status.is_terminal:
            # A finished job whose webhook was never queued (the enqueue failed, or the worker died) gets it now.
            return await self._queue_webhook(current.id)
        if current.status is JobStatus.queued and current.status_details is not None:
            outcome = await self._admit_deferred(current)
            return outcome if outcome is not None else await self.run(job_id, sent_at=sent_at)
        left = (current.lease_until or 0) - self.clock()
        if current.status is JobStatus.in_progress and left >= 0:
            logger.info("job running elsewhere: its message waits for the lease", extra={"job_id": job_id})
            return RetryIn(math.ceil(left) + LEASE_MARGIN_S)
        return await self._take_over(current, isolation)

    async def _take_over(self, current: Job, isolation: _Isolation) -> Outcome:
        with log_context(job_id=current.id, tenant=current.tenant):
            logger.warning("job's worker died: taking it over, alone", extra={"attempt": current.attempt})
            async with isolation.isolated():
                if time.monotonic() - isolation.started + current.request.timeout_s + 60 > self.lease_s:
                    return RetryIn(0)  # not enough of this invocation left to run it alone: in the next one
                # The dead worker's slot ended with its lease: the job needs one again, like any other.
                slot = await self._take_slot(current.tenant, current.id, expires_at=current.expires_at,
                                             queued=False, priority=current.request.priority)
                if slot is not None and not isinstance(slot, Slot):
                    return slot  # parked
                claim, held = await asyncio.to_thread(self._claim, self.store.take_over, current.id, slot)
                if claim.job is None:
                    return RetryIn(LEASE_MARGIN_S)  # someone else took it: look again shortly
                return await self._run_in_slot(claim.job, held)

    # --- concurrency slots (concurrency.py) -------------------------------------------------------
    # A batch's jobs start together: they read their states in one BatchGetItem, a tenant's jobs take their slots
    # in one write, and those that stop together give them back in one.

    async def _claim_in_slot(self, job_id: str, sent_at: float | None) -> tuple[Claim, Slot | None] | Outcome:
        """Claim a queued job under a concurrency slot taken first, or the outcome that holds it back. A job that is
        not queued (running, finished, missing) takes no slot: its claim fails and it goes its usual way."""
        slot = None
        if self.slots is not None and (state := await self._stored_state(job_id, sent_at)) is not None \
                and state.status is JobStatus.queued:
            taken = await self._take_slot(state.tenant, job_id, expires_at=state.expires_at, queued=True,
                                          priority=state.priority)
            if taken is not None and not isinstance(taken, Slot):
                return taken
            slot = taken
        # One thread hop each: the batch's jobs keep their order in reaching the model.
        return await asyncio.to_thread(self._claim, self.store.claim_job, job_id, slot)

    async def _stored_state(self, job_id: str, sent_at: float | None) -> JobState | None:
        """The job's state. The API sends a job's message, then stores the job (a batch's 100 in a few writes): a
        young message's job not found is looked for again a few times within the invocation, rather than its message
        made to come back (a second later at least, received and claimed again)."""
        state = await self._states.get(job_id)
        young = sent_at is not None and self.clock() - sent_at < YOUNG_MESSAGE_S
        for wait in MISSING_JOB_WAITS_S if young else ():
            if state is not None:
                break
            await asyncio.sleep(wait)
            state = await self._states.get(job_id)
        return state

    def _claim(self, claim_job: Callable[..., Claim], job_id: str, slot: Slot | None) -> tuple[Claim, Slot | None]:
        """The claim (or take-over) of the job under its slot; a lost claim gives the slot back."""
        claim = claim_job(job_id, lease_s=self.lease_s)
        if claim.job is None:
            self._give_back_slots([slot] if slot is not None else [])
            slot = None
        return claim, slot

    async def _take_slot(self, tenant: str, job_id: str, *, expires_at: int | None, queued: bool,
                         priority: Priority = "normal") -> Slot | Outcome | None:
        """A slot for the tenant's job (None: no limits are kept), or the outcome of parking the job (its tenant is
        full). A take that removed dead workers' expired slots may leave room nobody else would release: it
        releases waiting jobs into it."""
        if self.slots is None or self.waiting is None or self.concurrent_jobs is None:
            return None
        slot = await self._slot_takes.get(_SlotAsk(tenant))
        if slot is None:
            return await asyncio.to_thread(self._park, tenant, job_id, limit=self.concurrent_jobs(tenant),
                                           expires_at=expires_at, queued=queued, priority=priority)
        if slot.cleared and slot.room > 0:
            await asyncio.to_thread(self._release, tenant, slot.room)
        return slot

    def _take_slots(self, asks: list[_SlotAsk]) -> dict[_SlotAsk, Slot]:
        """The slots of the asks made together, a tenant's in one write when it has room for all of them; the asks
        past a tenant's room get none (they park)."""
        assert self.slots is not None and self.concurrent_jobs is not None
        taken: dict[_SlotAsk, Slot] = {}
        for tenant, group in _by_tenant(asks).items():
            slots = self.slots.take_all(tenant, len(group), limit=self.concurrent_jobs(tenant), lease_s=self.lease_s)
            taken.update(zip(group, slots, strict=False))
        return taken

    def _park(self, tenant: str, job_id: str, *, limit: int, expires_at: int | None, queued: bool,
              priority: Priority) -> Outcome:
        """Park the job (concurrency.py) and delete its message; then look again: a slot given back between the
        take's refusal and the park was given back to no one (its giver found nobody waiting), so if the tenant
        has room now, its oldest waiting jobs are released at once."""
        assert self.slots is not None and self.waiting is not None
        self.slots.mark_parked(tenant)
        self.waiting.park(tenant, job_id, expires_at=expires_at, queued=queued, priority=priority)
        logger.info("job parked: its tenant runs as many jobs as it may",
                    extra={"tenant": tenant, "job_id": job_id, "concurrent_jobs": limit})
        count("JobsParked")
        if (room := self.slots.room(tenant, limit=limit)) > 0:
            self._release(tenant, room)
        return DONE

    def _release(self, tenant: str, room: int) -> None:
        """Release up to ``room`` of the tenant's waiting jobs. A failure here leaves them parked (the next give-back
        or the sweeper's backstop releases them): it never changes the outcome of the job at hand."""
        if self.waiting is None:
            return
        try:
            self.waiting.release(tenant, room=room)
        except Exception:
            logger.exception("parked jobs not released; the next slot given back or the sweeper releases them",
                             extra={"tenant": tenant})
            count("JobReleasesNotSent")

    async def _run_in_slot(self, job: Job, slot: Slot | None) -> Outcome:
        """Run a claimed job; its slot is given back however the attempt stops running (a dead process's slot ends
        with its lease instead): while its usage is counted (``_count_usage``), else when it stops."""
        held = [slot] if slot is not None else []
        token = _HELD.set(held)  # this task's own (each task runs in a copy of its context)
        try:
            try:
                outcome = await self._run_claimed(job)
            except Exception:
                await self._give_back(held)
                raise
        finally:
            _HELD.reset(token)
        # Not in a `finally`: a BaseException is the process going down, and awaiting there would let the batch's
        # other jobs run on in a dying process. Its slots end with their leases, as a killed process's do.
        await self._give_back(held)
        return outcome

    async def _give_back(self, held: list[Slot]) -> None:
        """Give back the slot held, if it still is."""
        if held:
            await self._slot_gives.get(held.pop())

    def _give_back_slots(self, slots: list[Slot]) -> dict[Slot, None]:
        """Give the slots back (a tenant's in one write), and release each tenant's oldest waiting jobs into the
        room there is then (normally the slots given back; more when a limit was raised or dead workers' slots have
        expired)."""
        if self.slots is None or self.concurrent_jobs is None:
            return {}
        for tenant, group in _by_tenant(slots).items():
            try:
                room = self.slots.give_back_all(group, limit=self.concurrent_jobs(tenant))
            except Exception:
                # The jobs' outcomes stand: the slots end with their leases instead, holding the tenant's slots.
                logger.exception("concurrency slots not given back; they end with their leases",
                                 extra={"tenant": tenant})
                continue
            if room > 0:
                self._release(tenant, room)
        return {}

    async def _admit_deferred(self, job: Job) -> Outcome | None:
        """A job deferred by its tenant's token rate or budget, come due: admitted now (None: claim it), or deferred
        again until the limit allows (its message comes back then, or, past SQS's delays, the sweeper sends it)."""
        from aijobs.rates import OverBudget, OverRate

        reservation = None
        if self.limiter is not None:  # else the limits were turned off meanwhile: it runs
            try:
                reservation = await asyncio.to_thread(self.limiter.reserve, job)
            except (OverRate, OverBudget) as exc:
                with log_context(job_id=job.id, tenant=job.tenant):
                    if exc.not_before is None:  # its limits were lowered below what it needs: it can never run
                        return await self._fail(job, exc)
                    details = StatusDetails(reason=exc.code, not_before=exc.not_before)
                    await asyncio.to_thread(self.store.defer, job, details)
                    logger.info("deferred job still over its limit", extra={"reason": exc.code})
                    wait = details.not_before - int(self.clock())
                    if wait <= MAX_DELAY_S and self.queue is not None:  # else the sweeper sends it when due
                        await asyncio.to_thread(self.queue.send_job, job.id, priority=job.request.priority,
                                                delay_s=wait)
                    return DONE
        if not await asyncio.to_thread(self.store.admit_deferred, job, reservation) and self.limiter and reservation:
            # Admitted by another delivery of its message, or cancelled meanwhile: the reservation goes back.
            await asyncio.to_thread(self.limiter.release, job.tenant, reservation, submitted=True)
        return None

    def _missing(self, job_id: str, sent_at: float | None) -> Outcome:
        age = self.clock() - sent_at if sent_at is not None else math.inf
        if age < MISSING_JOB_GRACE_S:
            # Stored a moment after the message was sent, as a rule: look again soon, then less and less often
            # (1, 2, 4... s: a few receives, far from the dead-letter queue's count).
            return RetryIn(max(1, min(math.ceil(age), math.ceil(MISSING_JOB_GRACE_S - age))))
        logger.info("message of a job that does not exist: never stored, or expired", extra={"job_id": job_id})
        return DONE

    async def _run_claimed(self, job: Job) -> Outcome:
        with log_context(job_id=job.id, tenant=job.tenant, attempt=job.attempt):
            if job.attempt > self.retry.max_attempts:  # the worker died on every attempt so far
                return await self._fail(job, ATTEMPTS_EXHAUSTED)
            started, log = time.monotonic(), _OutputLog()
            try:
                made = await self._call_model(job, log)
            except ProviderError as exc:
                return await self._provider_failed(job, exc)
            run = RunRecord(duration_ms=int((time.monotonic() - started) * 1000), output_seq=log.seq,
                            output_logged_chars=log.chars)
            if isinstance(made, Stopped):
                return await self._stopped(job, made.text, run)
            run = dataclasses.replace(run, provider_model=made.model, finish_reason=made.finish_reason,
                                      output_files=made.files, output_dimensions=made.dimensions, backend=made.backend)
            price = _price(job, made.usage, served_by=made.fallback_model)
            if job.request.response_format is not None and made.text is not None and (invalid := check_output(
                    job.request.response_format, made.text, finish_reason=made.finish_reason)) is not None:
                return await self._output_invalid(job, invalid, made, price, run)
            usage, total = self._with_spent(job, made.usage, price)
            ended = await asyncio.to_thread(self.store.complete_job, job, output_text=made.text, usage=usage,
                                            price=total, run=run)
            if ended is None:
                return await self._claim_lost(job, made, price, run)
            logger.info("job completed", extra={"output_tokens": usage.output_tokens})
            count("JobsCompleted")
            await self._count_usage(job, made.usage, price.cost_usd)
            return await self._finished(ended)

    @staticmethod
    def _with_spent(job: Job, usage: Usage, price: Price) -> tuple[Usage, Price]:
        """The job's usage and cost with this attempt's: earlier attempts' (an output that did not match the job's
        format) were paid for too."""
        if job.usage is None or job.cost_usd is None:
            return usage, price
        return job.usage + usage, Price(job.cost_usd + price.cost_usd, bool(job.price_known) and price.known)

    async def _claim_lost(self, job: Job, made: Made, price: Price, run: RunRecord) -> Outcome:
        """The attempt's outcome could not be written: the job was cancelled while it ran (its output, usage and cost
        are kept: they were paid for), or another worker has it."""
        usage, total = self._with_spent(job, made.usage, price)
        if await asyncio.to_thread(self.store.keep_cancelled_run, job, output_text=made.text, usage=usage,
                                   price=total, run=run):
            logger.info("job was cancelled while it ran: its output, usage and cost are kept")
            await self._count_usage(job, made.usage, price.cost_usd)
        else:
            logger.info("job outcome dropped: claim lost")
        return DONE

    async def _output_invalid(self, job: Job, error: OutputInvalid, made: Made, price: Price,
                              run: RunRecord) -> Outcome:
        """An output that is not the JSON the job asked for: the attempt was paid for (its usage counts now, apart
        from the job's reservation, which its last attempt settles); the job runs again, up to
        ``output_retries`` times, else fails with ``output_invalid``."""
        usage, total = self._with_spent(job, made.usage, price)
        spent = Spent(usage=usage, price=total, invalid_outputs=job.invalid_outputs + 1)
        count("OutputsInvalid")
        if spent.invalid_outputs > self.output_retries or job.attempt >= self.retry.max_attempts:
            return await self._fail(job, error, spent=spent, last=(made.usage, price))
        if not await asyncio.to_thread(self.store.requeue_job, job, error.detail(), retry_at=int(self.clock()),
                                       spent=spent):
            return await self._claim_lost(job, made, price, run)
        logger.warning("job's output did not match its format: it runs again", extra={"error_code": error.code})
        await self._count_usage(job, made.usage, price.cost_usd, settle=False)
        return RetryIn(0)

    async def _make(self, job: Job, parts: list[str]) -> Made:
        """The attempt's model call(s), by the job's kind; a text job's output arrives in ``parts``, an embedding or
        image job's is stored in files when the calls have ended."""
        request = job.request
        if request.kind in ("text", "answer"):
            completion = await self.provider.complete(request, model=job.model, parts=parts)
            return Made(text=completion.text, usage=completion.usage, model=completion.model,
                        finish_reason=completion.finish_reason, backend=completion.backend,
                        fallback_model=completion.fallback_model)
        try:
            async with asyncio.timeout(request.timeout_s):
                if request.kind == "ingest":
                    return await self._ingest(job)
                return await (self._embed(job) if request.kind == "embedding" else self._images(job))
        except TimeoutError:
            raise ProviderTimeout("the model provider did not answer in time", retryable=True) from None

    async def _embed(self, job: Job) -> Made:
        """An embedding job's vectors, made in calls of ``embed_batch`` texts, kept as one JSON Lines file."""
        texts, vectors, usage = job.request.texts, [], Usage()
        made = None
        for start in range(0, len(texts), self.embed_batch):
            made = await self.provider.embed(texts[start:start + self.embed_batch], model=job.model,
                                             dimensions=job.request.dimensions)
            vectors += made.vectors
            usage += made.usage
        lines = "".join(json.dumps({"object": "embedding", "index": i, "embedding": vector}, separators=(",", ":"))
                        + "\n" for i, vector in enumerate(vectors))
        key = await asyncio.to_thread(self.store.put_output_file, job, "embeddings.jsonl", lines.encode(),
                                      content_type="application/x-ndjson")
        # The last call's model and backend (each call is routed on its own; they answer alike as a rule).
        return Made(text=None, usage=usage, model=made.model if made else job.model, files=(key,),
                    dimensions=len(vectors[0]) if vectors else 0, backend=made.backend if made else None,
                    fallback_model=made.fallback_model if made else None)

    async def _ingest(self, job: Job) -> Made:
        """An ingest job's documents chunked, embedded and indexed; its output says what became of each."""
        if self.documents is None:
            raise ProviderError("documents cannot be indexed here", code="unsupported_kind")
        done = await self.documents.index(job)
        return Made(text=done.output.model_dump_json(exclude_none=True), usage=done.usage, model=done.model,
                    backend=done.backend, fallback_model=done.fallback_model)

    async def _images(self, job: Job) -> Made:
        """An image job's images, made in one call, kept as PNG files."""
        request = job.request
        made = await self.provider.images(str(request.input), model=job.model, size=request.size, n=request.n or 1)
        keys = [await asyncio.to_thread(self.store.put_output_file, job, f"image-{i}.png", png,
                                        content_type="image/png") for i, png in enumerate(made.pngs)]
        return Made(text=None, usage=made.usage.model_copy(update={"images": len(keys)}), model=made.model,
                    files=tuple(keys), backend=made.backend, fallback_model=made.fallback_model)

    async def _call_model(self, job: Job, log: _OutputLog) -> Made | Stopped:
        """The model's answer; ``Stopped`` when the job was cancelled (or taken over) meanwhile: the model's stream
        is then closed, so the provider stops generating.

        While the model streams, what it made since the last flush goes to the job's output log every ``flush_s``
        for a ``stream: true`` job; another job's, every ``QUIET_FLUSH_S`` while someone looks at it (a GET or a
        stream of it while it runs, ``watched_at``, seen at a status check), and not at all while nobody does: one
        small piece, with the progress so far. The flushes fall on the same instants for every job of the process
        (multiples of the period), and the pieces of an instant are written in one call (``BatchWriteItem``).
        Every ``cancel_check_s`` the worker reads the job's status (with every other running job's of the process,
        status_checks.py): a cancel stops the call within about that, whether the model is silent or not. The job
        item itself is not written until the call ends: a write's units follow the item's size, and a chunk is
        small.
        """
        parts: list[str] = []
        call = asyncio.create_task(self._make(job, parts))
        flush_s = self.flush_s if job.request.stream else QUIET_FLUSH_S
        started = time.monotonic()
        # The first flush a whole period after the start at least: at most one a period, however short the call.
        next_flush = next_instant(started, flush_s) + flush_s
        next_check, flushed = self.status_checks.next_check(started), 0
        watched = job.request.stream  # another job's output is flushed only while someone looks at it
        try:
            while not (await asyncio.wait({call}, timeout=max(0.0, min(next_flush, next_check) - time.monotonic())))[0]:
                now = time.monotonic()
                if now >= next_flush:
                    next_flush = next_instant(now, flush_s)
                    if watched and len(parts) > flushed:
                        new, flushed = "".join(parts[flushed:]), len(parts)
                        progress = Progress(output_tokens=flushed, output_chars=log.chars + len(new),
                                            elapsed_ms=int((now - started) * 1000))
                        await self._output_writes.get(OutputPiece(job.id, job.attempt, log.seq + 1, new, progress,
                                                                  timeout_s=job.request.timeout_s))
                        log.seq, log.chars = log.seq + 1, progress.output_chars
                if now >= next_check:
                    next_check = self.status_checks.next_check(now)
                    state = await self.status_checks.state(job.id)
                    if state is None or state.status is not JobStatus.in_progress or state.attempt != job.attempt:
                        return Stopped("".join(parts))
                    looked = state.watched_at is not None and self.clock() - state.watched_at <= WATCHED_FOR_S
                    if looked and not watched:
                        next_flush = now  # what it has made so far, at once
                    watched = job.request.stream or looked
            return call.result()
        finally:
            if not call.done():
                call.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await call

    async def _stopped(self, job: Job, output_text: str, run: RunRecord) -> Outcome:
        """A call stopped by a cancel was billed for what it read and made: that usage and cost stay on the job (an
        embedding or image call's input, as counted: what a provider bills for a call it did not finish is not
        known)."""
        usage = await asyncio.to_thread(stopped_call_usage, job.request, model=job.model, output_text=output_text)
        price = estimate_cost(job.model, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
        count("ModelCallsAborted")
        total_usage, total = self._with_spent(job, usage, price)
        text = output_text if job.request.kind in ("text", "answer") else None
        if await asyncio.to_thread(self.store.keep_cancelled_run, job, output_text=text, usage=total_usage,
                                   price=total, run=run):
            logger.info("job cancelled while it ran: its model call was stopped, its usage kept",
                        extra={"output_tokens": usage.output_tokens})
            await self._count_usage(job, usage, price.cost_usd)
        else:
            logger.info("model call stopped: the job is no longer this attempt's (taken over, or gone)")
        return DONE

    async def _provider_failed(self, job: Job, exc: ProviderError) -> Outcome:
        log = {"error_type": exc.type, "error_code": exc.code}
        if exc.retryable and exc.retry_after is not None and exc.retry_after > self.retry.max_retry_after_s:
            return await self._fail(job, type(exc)(
                f"the model provider asked to wait {exc.retry_after} s, more than the "
                f"{self.retry.max_retry_after_s} s this deployment waits", code="retry_after_too_long"))
        if not exc.retryable or job.attempt >= self.retry.max_attempts:
            return await self._fail(job, exc)
        delay = self.retry.delay_s(job.attempt, exc.retry_after)
        if not await asyncio.to_thread(self.store.requeue_job, job, exc.detail(),
                                       retry_at=int(self.clock()) + delay):
            return DONE  # the claim was lost: another worker has the job
        logger.warning("job will be retried", extra={**log, "delay_s": delay})
        count("ProviderRetries")
        return RetryIn(delay)

    async def _fail(self, job: Job, error: AijobsError, *, spent: Spent | None = None,
                    last: tuple[Usage, Price] | None = None) -> Outcome:
        """Fail the job; ``spent``: its usage and cost so far, of which ``last`` is this attempt's (an output that did
        not match its format). Without them this attempt reported no usage."""
        final = error.detail().model_copy(update={"retryable": False})  # a failed job never runs again
        if (ended := await asyncio.to_thread(self.store.fail_job, job, final, spent=spent)) is None:
            return DONE
        logger.warning("job failed", extra={"error_type": error.type, "error_code": error.code})
        count("JobsFailed", error_type=error.type)
        usage, price = last or (Usage(), None)  # no usage: its reservation is settled at zero
        await self._count_usage(job, usage, price.cost_usd if price else None)
        return await self._finished(ended)

    async def _count_usage(self, job: Job, usage: Usage, cost: Decimal | None, *, settle: bool = True) -> None:
        """Add an attempt's usage and cost to its tenant's day (once: only the worker whose write moved the job on
        calls this); ``settle``: the job has ended, and this replaces its reservation. The jobs of a tenant that end
        together count in one write. A failure here loses that count, never the job's outcome: it is logged and
        counted. The attempt has stopped running: its slot, if it holds one, is given back meanwhile."""
        counted = None if self.usage is None else self._usage_counts.get(_UsageAsk(job.tenant, job.id, JobEnd(
            usage.input_tokens, usage.output_tokens, cost, job.reservation if settle else None)))
        await asyncio.gather(self._give_back(_HELD.get([])), *([counted] if counted else []))

    def _count_usages(self, asks: list[_UsageAsk]) -> dict[_UsageAsk, None]:
        assert self.usage is not None
        for tenant, group in _by_tenant(asks).items():
            try:
                self.usage.record_job_ends(tenant, [ask.end for ask in group])
            except Exception:
                logger.exception("usage not counted", extra={"tenant": tenant, "job_ids": [a.job_id for a in group]})
                count("UsageNotCounted", len(group))
        return {}

    async def _finished(self, ended: Job) -> Outcome:
        """``ended``: the job as its terminal write left it."""
        # A callback_url, or the tenant's webhook endpoints (a cached read): else nothing to queue, at no cost.
        return await self._queue_webhook(ended.id, ended) if self.outbox and self.outbox.has_destinations(ended) \
            else DONE

    async def _queue_webhook(self, job_id: str, ended: Job | None = None) -> Outcome:
        """Queue a finished job's webhook (a no-op when queued already); if that fails, the sweeper queues it."""
        if self.outbox is None:
            return DONE
        try:
            await asyncio.to_thread(self.outbox.enqueue_final_event, job_id, ended)
        except Exception:
            # Not the jobs message's business: holding it would only walk it to the dead-letter queue.
            logger.exception("webhook not queued; the sweeper will queue it", extra={"job_id": job_id})
        return DONE
