"""Concurrency limits (issue 11, item 4): at most ``concurrent_jobs`` of a tenant in_progress at once, across
workers; jobs over it stay queued (parked in the table, their messages deleted) and start as slots free, oldest
first, never failed, dropped, dead-lettered or run twice.

Most tests run the real worker handler under the simulator (tests/simulation.py: SQS delays and leases on the
services' clock, so a 15-minute lease costs no wall time). The burst test runs real worker invocations in threads,
as concurrent Lambda instances would, and checks the order jobs started in, never how long anything took.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Attr, Key

from aijobs.concurrency import PARK_BACKSTOP_S, WAITING_WINDOW_S, TenantSlots, WaitingJobs
from aijobs.dynamo import WAITING_PREFIX, tenant_partition
from aijobs.errors import Conflict
from aijobs.local.server_process import UvicornThread
from aijobs.local.template import LocalResources
from aijobs.models.jobs import JobRequest, JobStatus
from aijobs.models.tenants import TenantLimits
from aijobs.services import Services
from aijobs.store import Claim
from tests.faults import register_hooks
from tests.helpers import eventually
from tests.integration.conftest import TENANT_A, TENANT_B, run_worker
from tests.simulation import Simulator

AWS = tuple[boto3.session.Session, LocalResources]


class ClaimLog:
    """Every successful claim (or take-over), with how many of its tenant's jobs were running right after it,
    counted from the table (not from the worker's own bookkeeping): in_progress under a lease that holds (a job
    whose worker died reads in_progress until it is taken over, but runs nowhere and holds no slot). And every
    completion, by how many claims had been made when it happened."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.order: list[tuple[str, str]] = []  # (tenant, job id), in the order they were claimed
        self.completed: list[tuple[str, int]] = []  # (tenant, len(order) at the time), in the order they completed
        self.peak: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def installed(self) -> Iterator[ClaimLog]:
        store = self.services.store
        real = {name: getattr(store, name) for name in ("claim_job", "take_over", "complete_job")}

        def counted(name: str) -> Callable[..., Claim]:
            def claim(job_id: str, *, lease_s: int) -> Claim:
                result = real[name](job_id, lease_s=lease_s)
                if result.job is not None:
                    self._note(result.job.tenant, job_id)
                return result
            return claim

        def complete(job: Any, **kwargs: Any) -> Any:
            ended = real["complete_job"](job, **kwargs)
            if ended is not None:
                with self._lock:
                    self.completed.append((job.tenant, len(self.order)))
            return ended

        for name in ("claim_job", "take_over"):
            setattr(store, name, counted(name))
        store.complete_job = complete  # type: ignore[method-assign]
        try:
            yield self
        finally:
            for name in real:
                delattr(store, name)

    def _note(self, tenant: str, job_id: str) -> None:
        running = self.services.table.scan(
            FilterExpression=Attr("sk").eq("JOB") & Attr("tenant").eq(tenant)
            & Attr("status").eq(JobStatus.in_progress.value) & Attr("lease_until").gte(int(self.services.clock())),
            ConsistentRead=True)["Items"]
        with self._lock:
            self.order.append((tenant, job_id))
            self.peak[tenant] = max(self.peak[tenant], len(running))


def _submit(services: Services, tenant: str, prompt: str) -> str:
    return services.jobs.submit_job(tenant=tenant, request=JobRequest(input=prompt)).id


def _status(services: Services, job_id: str) -> JobStatus:
    job = services.store.get_job(job_id, consistent=True)
    assert job is not None
    return job.status


def _dead_letters(services: Services) -> int:
    attributes = services.sqs.get_queue_attributes(QueueUrl=services.settings.jobs_dead_letter_queue_url,
                                                   AttributeNames=["ApproximateNumberOfMessages",
                                                                   "ApproximateNumberOfMessagesNotVisible"])
    return sum(int(v) for v in attributes["Attributes"].values())


def _messages(services: Services) -> int:
    """The jobs queue's messages, visible or in flight (the simulator's deferred sends are counted apart)."""
    attributes = services.sqs.get_queue_attributes(QueueUrl=services.settings.jobs_queue_url,
                                                   AttributeNames=["ApproximateNumberOfMessages",
                                                                   "ApproximateNumberOfMessagesNotVisible"])
    return sum(int(v) for v in attributes["Attributes"].values())


def _waiting(services: Services, tenant: str) -> list[str]:
    """The tenant's parked jobs, oldest first, as their wait items say."""
    items = services.table.query(KeyConditionExpression=Key("pk").eq(tenant_partition(tenant))
                                 & Key("sk").begins_with(WAITING_PREFIX), ConsistentRead=True)["Items"]
    return [str(item["sk"]).removeprefix(WAITING_PREFIX) for item in items]


@contextmanager
def _parks(services: Services) -> Iterator[list[str]]:
    """The ids of the jobs parked meanwhile, in the order they were parked (once per park)."""
    parked: list[str] = []
    waiting = services.waiting_jobs
    real = waiting.park

    def park(tenant: str, job_id: str, **kwargs: Any) -> None:
        real(tenant, job_id, **kwargs)
        parked.append(job_id)

    waiting.park = park  # type: ignore[method-assign]
    try:
        yield parked
    finally:
        del waiting.park


@contextmanager
def _delayed_sends(services: Services) -> Iterator[list[int]]:
    """The delays of the SendMessage calls a handler makes to the jobs queue (a held-back job's message)."""
    delays: list[int] = []

    def note(params: dict[str, Any], **_: Any) -> None:
        if int(params.get("DelaySeconds") or 0) > 0 and params["QueueUrl"] == services.settings.jobs_queue_url:
            delays.append(int(params["DelaySeconds"]))

    remove = register_hooks(services.sqs.meta.events, [("before-parameter-build.sqs.SendMessage", note)])
    try:
        yield delays
    finally:
        remove()


@pytest.fixture
def sim(aws: AWS, services: Services) -> Iterator[Simulator]:
    simulator = Simulator.create(services, sweep_period_s=300, queue_arns=aws[1].arns)
    remove = simulator.install()
    try:
        yield simulator
    finally:
        remove()


def _model_calls(fake_model: UvicornThread, prompt: str) -> int:
    return int(fake_model.server.config.app.state.calls.get(f"prompt:{prompt}", 0))


# --- the slots themselves ------------------------------------------------------------------------------------------


def test_slots_hold_a_tenants_limit_across_processes_and_leave_other_tenants_alone(services: Services) -> None:
    # Two workers' processes: two TenantSlots on one table.
    first, second = (TenantSlots(table=services.table, clock=services.clock) for _ in range(2))

    a1 = first.take(TENANT_A, limit=2, lease_s=900)
    a2 = second.take(TENANT_A, limit=2, lease_s=900)
    refused = first.take(TENANT_A, limit=2, lease_s=900)
    b1 = second.take(TENANT_B, limit=1, lease_s=900)

    assert a1 and a2 and b1 and refused is None
    assert second.take(TENANT_B, limit=1, lease_s=900) is None
    first.mark_parked(TENANT_A)  # the refused job parks
    assert first.give_back(a1, limit=2) == 1  # the room it leaves, from the write's answer
    assert second.take(TENANT_A, limit=2, lease_s=900) is not None  # a slot given back is free at once
    assert len(first.running(TENANT_A)) == 2 and len(first.running(TENANT_B)) == 1


def test_a_giver_looks_for_waiting_jobs_only_while_one_of_its_tenants_jobs_parked_lately(services: Services) -> None:
    slots = TenantSlots(table=services.table, clock=services.clock)
    held = [slots.take(TENANT_A, limit=3, lease_s=2 * WAITING_WINDOW_S) for _ in range(3)]
    assert all(held)

    assert slots.give_back(held[0], limit=3) == 0  # nobody parked: no room to release into, no look
    slots.mark_parked(TENANT_A)
    services.clock.advance(WAITING_WINDOW_S)
    assert slots.give_back(held[1], limit=3) == 2  # parked within the window: the room to release into
    services.clock.advance(1)
    assert slots.give_back(held[2], limit=3) == 0  # it would have parked again since, had it still waited


def test_a_dead_workers_slot_ends_with_its_lease_and_is_removed_by_the_next_take(services: Services) -> None:
    slots = TenantSlots(table=services.table, clock=services.clock)
    dead = slots.take(TENANT_A, limit=1, lease_s=900)  # taken, never given back: its worker died
    assert dead is not None and slots.take(TENANT_A, limit=1, lease_s=900) is None

    services.clock.advance(901)
    taken = slots.take(TENANT_A, limit=1, lease_s=900)

    assert taken is not None
    assert slots.running(TENANT_A) == {taken.token: taken.lease_until}  # the expired one went in the same write


@contextmanager
def _slot_writes(services: Services) -> Iterator[list[str]]:
    """The UpdateExpressions of the writes to the slots items while inside."""
    writes: list[str] = []

    def note(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key", {}).get("sk") in ("SLOTS", {"S": "SLOTS"}):
            writes.append(str(params.get("UpdateExpression")))

    events = services.table.meta.client.meta.events
    events.register("provide-client-params.dynamodb.UpdateItem", note)
    try:
        yield writes
    finally:
        events.unregister("provide-client-params.dynamodb.UpdateItem", note)


def test_jobs_that_start_or_stop_together_take_and_give_back_their_slots_in_one_write(services: Services) -> None:
    slots = TenantSlots(table=services.table, clock=services.clock)
    slots.give_back(first := slots.take(TENANT_A, limit=5, lease_s=900), limit=5)  # type: ignore[arg-type]
    assert first is not None

    with _slot_writes(services) as writes:
        together = slots.take_all(TENANT_A, 3, limit=5, lease_s=900)
    assert len(together) == 3 and len(writes) == 1
    assert set(slots.running(TENANT_A)) == {slot.token for slot in together}

    with _slot_writes(services) as writes:
        more = slots.take_all(TENANT_A, 3, limit=5, lease_s=900)  # room for 2: one at a time, as many as fit
    assert len(more) == 2 and len(slots.running(TENANT_A)) == 5
    assert len(writes) == 1 + 3  # the refused write for all three, then two takes and a third's refusal

    with _slot_writes(services) as writes:
        slots.give_back_all(together, limit=5)
    assert len(writes) == 1 and set(slots.running(TENANT_A)) == {slot.token for slot in more}


def test_a_tenants_first_jobs_that_start_together_make_its_slots_item_in_one_write(services: Services) -> None:
    slots = TenantSlots(table=services.table, clock=services.clock)

    with _slot_writes(services) as writes:
        first = slots.take_all(TENANT_A, 3, limit=5, lease_s=900)  # no slots item yet
    assert len(first) == 3 and len(writes) == 2  # the refused write for all three, then the item made with them
    assert set(slots.running(TENANT_A)) == {slot.token for slot in first} and first[0].room == 2

    # A batch that finds the item made by another take meanwhile does not overwrite it (it takes one at a time).
    other = slots.take(TENANT_B, limit=5, lease_s=900)
    assert other is not None and not slots._make(TENANT_B, first)
    assert set(slots.running(TENANT_B)) == {other.token}


def test_slots_given_back_together_when_one_is_gone_are_given_back_one_at_a_time(services: Services) -> None:
    slots = TenantSlots(table=services.table, clock=services.clock)
    held = [slot for _ in range(3) if (slot := slots.take(TENANT_A, limit=3, lease_s=900)) is not None]
    slots.give_back(held[1], limit=3)  # removed meanwhile (as a dead worker's expired slot is, by another's take)

    slots.give_back_all(held, limit=3)

    assert slots.running(TENANT_A) == {}


def test_a_batch_of_one_tenants_jobs_takes_its_slots_in_one_write_and_each_job_runs_once(
        services: Services, fake_model: UvicornThread, worker_handler: Any) -> None:
    services.tenants.set_limits(TENANT_A, TenantLimits(concurrent_jobs=20))
    _hold_slots(services, TENANT_A, 1)  # the tenant's slots item exists (its first job's take makes it)
    prompts = [f"together {i} [[delay_ms=50]]" for i in range(8)]
    jobs = [_submit(services, TENANT_A, p) for p in prompts]

    with _slot_writes(services) as writes:
        run_worker(services, worker_handler)

    assert all(_status(services, j) is JobStatus.completed for j in jobs)
    assert all(_model_calls(fake_model, p) == 1 for p in prompts)
    takes = [w for w in writes if w.startswith("SET")]
    assert len(takes) == 1 and len(writes) < 1 + len(jobs)  # the gives: those that ended within 20 ms, together
    assert len(TenantSlots(table=services.table).running(TENANT_A)) == 1  # only the held one is left


def test_a_lower_limit_holds_back_new_jobs_until_the_running_ones_end(services: Services) -> None:
    slots = TenantSlots(table=services.table, clock=services.clock)
    held = [slots.take(TENANT_A, limit=3, lease_s=900) for _ in range(3)]

    assert slots.take(TENANT_A, limit=2, lease_s=900) is None
    for slot in held[:2]:
        assert slot is not None
        slots.give_back(slot, limit=2)
    assert slots.take(TENANT_A, limit=2, lease_s=900) is not None


# --- the worker, under the simulator -------------------------------------------------------------------------------


def test_no_tenant_ever_runs_more_than_its_limit_and_every_job_completes_once(
        services: Services, sim: Simulator, fake_model: UvicornThread) -> None:
    services.tenants.set_limits(TENANT_A, TenantLimits(concurrent_jobs=3))
    services.tenants.set_limits(TENANT_B, TenantLimits(concurrent_jobs=1))
    prompts = {TENANT_A: [f"limit a{i} [[delay_ms=30]]" for i in range(15)],
               TENANT_B: [f"limit b{i} [[delay_ms=30]]" for i in range(4)]}
    jobs = {p: _submit(services, tenant, p) for tenant, ps in prompts.items() for p in ps}

    with ClaimLog(services).installed() as log, _delayed_sends(services) as delays, _parks(services) as parked:
        sim.run()

    assert {p: _status(services, j) for p, j in jobs.items()} == dict.fromkeys(jobs, JobStatus.completed)
    assert log.peak == {TENANT_A: 3, TENANT_B: 1}  # reached, never passed, each tenant its own
    assert all(_model_calls(fake_model, p) == 1 for p in jobs)
    assert all(getattr(services.store.get_job(j), "attempt", 0) == 1 for j in jobs.values())
    # Jobs over the limit were parked, not sent again with a delay, and were all released (no wait item is left);
    # none of it walked a message to the dead-letter queue.
    assert parked and delays == []
    assert len(log.order) == len(jobs) and _waiting(services, TENANT_A) == [] == _waiting(services, TENANT_B)
    assert _dead_letters(services) == 0
    assert TenantSlots(table=services.table).running(TENANT_A) == {}


def test_a_slot_is_given_back_however_the_attempt_stops(services: Services, sim: Simulator) -> None:
    # With one slot, a slot not given back would keep the next job waiting a whole lease.
    services.tenants.set_limits(TENANT_A, TenantLimits(concurrent_jobs=1))
    jobs = {name: _submit(services, TENANT_A, prompt) for name, prompt in (
        ("completed", "fine"), ("failed", "refused [[fail=400]]"), ("retried", "flaky [[fail=500,times=1]]"),
        ("also completed", "fine again"))}
    started = services.clock()

    with ClaimLog(services).installed() as log:
        sim.run()

    assert {name: _status(services, j) for name, j in jobs.items()} == {
        "completed": JobStatus.completed, "failed": JobStatus.failed, "retried": JobStatus.completed,
        "also completed": JobStatus.completed}
    assert log.peak[TENANT_A] == 1
    assert services.clock() - started < services.settings.job_lease_s  # (simulated time) no slot waited out a lease
    assert TenantSlots(table=services.table).running(TENANT_A) == {}


def test_a_jobs_slot_is_given_back_while_its_usage_is_counted_not_after(
        services: Services, sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a tenant with one slot, and a usage count that waits to see the slot back before it writes
    services.tenants.set_limits(TENANT_A, TenantLimits(concurrent_jobs=1))
    usage = services.worker.usage
    assert usage is not None
    record, seen = usage.record_job_ends, []

    def record_job_ends(tenant: str, ends: list[Any]) -> None:
        seen.append(_wait_for(lambda: TenantSlots(table=services.table).running(TENANT_A) == {}))
        record(tenant, ends)

    monkeypatch.setattr(usage, "record_job_ends", record_job_ends)
    job = _submit(services, TENANT_A, "counted")

    sim.run()

    # Then the slot was free before the count was written, and the job's usage still counted
    assert _status(services, job) is JobStatus.completed and seen == [True]
    assert services.usage.usage(TENANT_A).today.output_tokens > 0


def _wait_for(probe: Callable[[], bool], timeout_s: float = 5) -> bool:
    with suppress(AssertionError):
        return eventually(probe, timeout_s=timeout_s, interval_s=0.02)
    return False


def test_a_dead_workers_slot_frees_after_its_lease_and_both_jobs_complete(
        services: Services, sim: Simulator, fake_model: UvicornThread) -> None:
    services.tenants.set_limits(TENANT_A, TenantLimits(concurrent_jobs=1))
    orphan = _submit(services, TENANT_A, "slot orphaned")
    # A worker received it, took the tenant's one slot, claimed it, and died.
    assert services.sqs.receive_message(QueueUrl=services.settings.jobs_queue_url, MaxNumberOfMessages=1)["Messages"]
    assert TenantSlots(table=services.table, clock=services.clock).take(TENANT_A, limit=1, lease_s=900)
    assert services.store.claim_job(orphan, lease_s=services.settings.job_lease_s).job is not None
    waiting = _submit(services, TENANT_A, "slot waiting")

    with ClaimLog(services).installed() as log:
        sim.run()

    assert _status(services, orphan) is JobStatus.completed and _status(services, waiting) is JobStatus.completed
    assert log.peak[TENANT_A] == 1
    assert _model_calls(fake_model, "slot orphaned") == 1 and _model_calls(fake_model, "slot waiting") == 1
    assert _dead_letters(services) == 0


def test_a_duplicate_delivery_of_a_held_or_running_job_runs_it_once(
        services: Services, sim: Simulator, fake_model: UvicornThread) -> None:
    services.tenants.set_limits(TENANT_A, TenantLimits(concurrent_jobs=1))
    first = _submit(services, TENANT_A, "dup first [[delay_ms=30]]")
    second = _submit(services, TENANT_A, "dup second [[delay_ms=30]]")
    for _ in range(4):
        services.job_queue.send_job(second)

    with ClaimLog(services).installed() as log:
        sim.run()

    assert _status(services, first) is JobStatus.completed and _status(services, second) is JobStatus.completed
    assert _model_calls(fake_model, "dup second [[delay_ms=30]]") == 1
    assert Counter(job for _, job in log.order) == {first: 1, second: 1}  # each claimed once, duplicates or not
    assert TenantSlots(table=services.table).running(TENANT_A) == {}


# --- parked jobs ----------------------------------------------------------------------------------------------------


def _hold_slots(services: Services, tenant: str, n: int) -> list[Any]:
    """``n`` of the tenant's slots taken as a running job's worker takes them (no job behind them)."""
    slots = TenantSlots(table=services.table, clock=services.clock)
    return [slots.take(tenant, limit=n, lease_s=services.settings.job_lease_s) for _ in range(n)]


def test_a_held_job_parks_without_a_message_and_starts_when_a_slot_frees(
        services: Services, sim: Simulator) -> None:
    services.tenants.set_limits(TENANT_A, TenantLimits(concurrent_jobs=1))
    [running] = _hold_slots(services, TENANT_A, 1)
    job = _submit(services, TENANT_A, "parked")

    with _delayed_sends(services) as delays:
        sim.poll(sim.jobs)
        # Parked: still queued, its message gone (nothing cycles through the queue while it waits), its wait item
        # there, and its sweep entry a backstop some minutes away.
        assert _status(services, job) is JobStatus.queued
        assert _messages(services) == 0 and delays == []
        assert _waiting(services, TENANT_A) == [job]
        item = services.table.get_item(Key={"pk": f"JOB#{job}", "sk": "JOB"}, ConsistentRead=True)["Item"]
        due = int(str(item["gsi3sk"]).split("#", 1)[0])
        assert PARK_BACKSTOP_S <= due - services.clock() <= 2 * PARK_BACKSTOP_S + 1

        services.worker._give_back_slots([running])  # the running job ends: its worker gives its slot back
        assert _messages(services) == 1 and _waiting(services, TENANT_A) == []  # released: sent once
        sim.run()

    assert _status(services, job) is JobStatus.completed
    assert _dead_letters(services) == 0


def test_parked_jobs_start_oldest_first(services: Services, sim: Simulator) -> None:
    services.tenants.set_limits(TENANT_A, TenantLimits(concurrent_jobs=1))
    [running] = _hold_slots(services, TENANT_A, 1)
    jobs = [_submit(services, TENANT_A, f"fifo {i}") for i in range(6)]
    while sim.poll(sim.jobs):
        pass
    assert _waiting(services, TENANT_A) == sorted(jobs) == jobs  # job ids are ULIDs: submission order

    with ClaimLog(services).installed() as log:
        services.worker._give_back_slots([running])
        sim.run()

    assert [job for _, job in log.order] == jobs
    assert log.peak[TENANT_A] == 1


def test_two_releasers_never_both_send_a_parked_job_and_a_cancelled_one_is_skipped(services: Services) -> None:
    services.tenants.set_limits(TENANT_A, TenantLimits(concurrent_jobs=1))
    cancelled, first, second = (_submit(services, TENANT_A, f"release {i}") for i in range(3))
    services.sqs.purge_queue(QueueUrl=services.settings.jobs_queue_url)
    for job in (cancelled, first, second):
        services.waiting_jobs.park(TENANT_A, job, expires_at=None, queued=True)
    services.jobs.cancel_job(tenant=TENANT_A, job_id=cancelled)
    mine, theirs = (WaitingJobs(table=services.table, store=services.store, queue=services.job_queue,
                                clock=services.clock) for _ in range(2))
    real = mine._oldest
    raced: list[int] = []

    def oldest_then_raced(tenant: str, *, limit: int) -> list[str]:
        entries = real(tenant, limit=limit)
        if not raced:  # another worker, reading the same entries, releases first
            raced.append(theirs.release(tenant, room=1))
        return entries

    mine._oldest = oldest_then_raced  # type: ignore[method-assign]
    released = mine.release(TENANT_A, room=1)

    # The cancelled job lost its entry and was skipped; the other worker won `first` (its delete came first): this
    # one's delete of it failed, so it sent `second` instead. Each job was sent once.
    assert (raced, released) == ([1], 1)
    bodies = services.sqs.receive_message(QueueUrl=services.settings.jobs_queue_url, MaxNumberOfMessages=10)
    assert sorted(json.loads(m["Body"])["job_id"] for m in bodies["Messages"]) == [first, second]
    assert _waiting(services, TENANT_A) == []


def test_a_slot_freed_while_a_job_parks_releases_it(services: Services, sim: Simulator) -> None:
    # The race: the take is refused (the tenant is full), then the running job ends and its worker, looking for
    # waiting jobs, finds none (the park is not written yet), then the park is written. Nobody would give a slot
    # back again: the parking worker's second look releases the job.
    services.tenants.set_limits(TENANT_A, TenantLimits(concurrent_jobs=1))
    [running] = _hold_slots(services, TENANT_A, 1)
    job = _submit(services, TENANT_A, "parked in the race")
    waiting = services.waiting_jobs
    real = waiting.park

    def park_after_the_slot_frees(tenant: str, job_id: str, **kwargs: Any) -> None:
        services.worker._give_back_slots([running])  # the giver finds nobody waiting
        assert _waiting(services, TENANT_A) == []
        real(tenant, job_id, **kwargs)

    waiting.park = park_after_the_slot_frees  # type: ignore[method-assign]
    try:
        sim.poll(sim.jobs)
    finally:
        del waiting.park
    assert _messages(services) == 1 and _waiting(services, TENANT_A) == []  # released at once, not at the backstop

    started = services.clock()
    sim.run()

    assert _status(services, job) is JobStatus.completed
    assert services.clock() - started < PARK_BACKSTOP_S  # (simulated time) it never waited for the sweeper


def test_the_sweeper_sends_a_parked_job_again_at_its_backstop_and_that_is_harmless(
        services: Services, sim: Simulator, fake_model: UvicornThread) -> None:
    services.tenants.set_limits(TENANT_A, TenantLimits(concurrent_jobs=1))
    running = TenantSlots(table=services.table, clock=services.clock).take(TENANT_A, limit=1, lease_s=86_400)
    assert running is not None  # a long job: its slot outlives the backstop
    job = _submit(services, TENANT_A, "backstop")
    sim.poll(sim.jobs)

    services.clock.advance(2 * PARK_BACKSTOP_S + 1)  # type: ignore[attr-defined]
    report = sim.sweep()
    # Sent again (its release might have been lost), counted apart from repairs (SweeperRepairsAlarm's count).
    assert (report["parked_resent"], report["resent"]) == (1, 0) and _messages(services) == 1
    sim.poll(sim.jobs)  # its tenant is still full: it parks again, in its place; nothing else changed
    assert _status(services, job) is JobStatus.queued and _waiting(services, TENANT_A) == [job]
    assert _messages(services) == 0

    services.worker._give_back_slots([running])
    sim.run()
    assert _status(services, job) is JobStatus.completed and _model_calls(fake_model, "backstop") == 1


def test_a_dead_workers_expired_slots_release_parked_jobs_at_the_next_take(
        services: Services, sim: Simulator) -> None:
    # Two workers died holding both of A's slots (their jobs were cancelled meanwhile: nobody takes them over).
    services.tenants.set_limits(TENANT_A, TenantLimits(concurrent_jobs=2))
    _hold_slots(services, TENANT_A, 2)
    parked = [_submit(services, TENANT_A, f"behind the dead {i}") for i in range(3)]
    while sim.poll(sim.jobs):
        pass
    assert _waiting(services, TENANT_A) == parked and _messages(services) == 0

    services.clock.advance(services.settings.job_lease_s + 1)  # type: ignore[attr-defined]
    late = _submit(services, TENANT_A, "after the leases")
    with ClaimLog(services).installed() as log:
        sim.poll(sim.jobs)  # its take removes both expired slots and releases a parked job into the room left
        assert log.order[0] == (TENANT_A, late)
        assert parked[0] not in _waiting(services, TENANT_A)
        sim.run()

    assert all(_status(services, j) is JobStatus.completed for j in [*parked, late])
    assert log.peak[TENANT_A] <= 2 and _waiting(services, TENANT_A) == []


def test_a_dead_workers_expired_slots_release_parked_jobs_through_the_sweepers_backstop(
        services: Services, sim: Simulator) -> None:
    # As above, and no other job of A's ever comes: the parked jobs' backstops (the sweeper sends them again) find
    # the slots expired once their leases end.
    services.tenants.set_limits(TENANT_A, TenantLimits(concurrent_jobs=2))
    _hold_slots(services, TENANT_A, 2)
    parked = [_submit(services, TENANT_A, f"backstopped {i}") for i in range(3)]
    started = services.clock()

    with ClaimLog(services).installed() as log:
        sim.run()

    assert all(_status(services, j) is JobStatus.completed for j in parked)
    assert log.peak[TENANT_A] <= 2 and _waiting(services, TENANT_A) == []
    # (simulated time) within a lease and two backstops, the longest a backstop waits
    assert services.clock() - started <= services.settings.job_lease_s + 4 * PARK_BACKSTOP_S
    assert _dead_letters(services) == 0


def test_behind_a_parked_backlog_another_tenants_jobs_start_before_any_further_one_of_it(
        services: Services, sim: Simulator) -> None:
    services.tenants.set_limits(TENANT_A, TenantLimits(concurrent_jobs=2))
    running = _hold_slots(services, TENANT_A, 2)
    backlog = [_submit(services, TENANT_A, f"backlog {i}") for i in range(30)]
    while sim.poll(sim.jobs):  # A's backlog parks as the worker meets it: one look each
        pass
    assert _waiting(services, TENANT_A) == backlog and _messages(services) == 0
    small = [_submit(services, TENANT_B, f"small {i}") for i in range(3)]

    with ClaimLog(services).installed() as log:
        sim.poll(sim.jobs)  # nothing of A's is ahead of B's in the queue (B's batch runs in any order)
        assert sorted(log.order) == [(TENANT_B, job) for job in small]
        services.worker._give_back_slots([running[0]])  # one of A's running jobs ends: it releases A's oldest
        sim.poll(sim.jobs)

    assert log.order[3:] == [(TENANT_A, backlog[0])]
    assert _waiting(services, TENANT_A) == backlog[2:]  # which, ending, released the next one


# --- one tenant's burst, real invocations in threads ---------------------------------------------------------------


def test_one_tenants_burst_does_not_stall_another_tenants_jobs_behind_it(services: Services) -> None:
    # A sends a burst of slow jobs with a small limit, then B sends a few: B's start after A's first two, not after
    # A's backlog (which, without a limit, would all run first: they were queued first). A's jobs over the limit
    # park as the worker meets them; after that, an A job starts only when a running one ends and releases it.
    services.tenants.set_limits(TENANT_A, TenantLimits(concurrent_jobs=2))
    burst = [_submit(services, TENANT_A, f"a{i} [[delay_ms=3000]]") for i in range(60)]
    small = [_submit(services, TENANT_B, f"b{i}") for i in range(5)]
    handler = _worker_handler()
    services.worker  # noqa: B018 (built once, before the threads race to build it)
    stop = threading.Event()

    def instance() -> None:  # one Lambda instance of the worker, polling
        while not stop.is_set():
            if not run_worker(services, handler)["received"]:
                stop.wait(0.05)  # as the event source mapping's long poll: no busy loop on an empty queue

    with ClaimLog(services).installed() as log:
        threads = [threading.Thread(target=instance) for _ in range(3)]
        for thread in threads:
            thread.start()
        try:
            eventually(lambda: all(state.status is JobStatus.completed
                                   for state in services.store.get_states(small, consistent=True).values()),
                       timeout_s=60, interval_s=0.5)
            backlog = sum(state.status is JobStatus.queued
                          for state in services.store.get_states(burst, consistent=True).values())
        finally:
            stop.set()
            running = services.table.scan(FilterExpression=Attr("status").eq(JobStatus.in_progress.value),
                                          ConsistentRead=True)["Items"]
            for item in running:  # ended: their worker sees the cancel within half a second
                with suppress(Conflict):  # (or it ended meanwhile)
                    services.jobs.cancel_job(tenant=TENANT_A, job_id=str(item["id"]))
            for thread in threads:
                thread.join(timeout=30)

    last_b = max(i for i, (tenant, _) in enumerate(log.order) if tenant == TENANT_B)
    a_before = sum(tenant == TENANT_A for tenant, _ in log.order[:last_b])
    a_ended_before = sum(tenant == TENANT_A and claims <= last_b for tenant, claims in log.completed)
    # Out of 60 queued ahead of B's: the two A started first, and no other A job before B's last, beyond those that
    # finishing A jobs released (3 s each: as a rule none).
    assert a_before <= 2 + a_ended_before, (a_before, a_ended_before)
    assert backlog >= 50  # and A's backlog was still there when B's last job ended
    assert log.peak[TENANT_A] == 2
    assert _dead_letters(services) == 0


def _worker_handler() -> Any:
    from aijobs.local.stack import load_handler

    return load_handler("worker", "lambda_handler")
