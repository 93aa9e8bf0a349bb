"""Fault scenarios, shared by the fault suite (tests/integration/test_fault_suite.py) and the reliability table
(bench/reliability.py): each makes one fault happen to the real handler files (functions/*/app.py) on moto, the
fake model and webhook receivers on 127.0.0.1, drives everything to its end on the services' clock
(tests/simulation.py), and checks what became of every job against the promise:

- every job ends (completed or failed) exactly once: it is terminal, and ``completed_at`` was written once
  (counted on the wire: ``TerminalWrites``);
- the model is called at most once per attempt of a job, and exactly once for a job that succeeds at its first;
- each final event reaches a receiver that works exactly once (a 2xx heard by the sender), every try of it with
  the same ``webhook-id``: counted from what the receivers got, nothing deduplicated;
- nothing is left that will not run: every stored job is terminal, every message gone, one job per submission.

A scenario reports a ``Report``; the suite asserts it has no violation, the bench prints it as a table row with
the time to recover that the deployed settings give (``Recovery``: seconds and the formula behind them).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, Literal

import boto3
from boto3.dynamodb.conditions import Attr

from aijobs.local.pollers import FakeLambdaContext
from aijobs.local.server_process import UvicornThread
from aijobs.local.stack import free_port, load_handler
from aijobs.local.template import LocalResources, load_template
from aijobs.models.jobs import Job, JobRequest
from aijobs.providers import ModelProvider, StreamEvent
from aijobs.schedules.expressions import RateExpression, parse_expression
from aijobs.services import Services, set_services
from aijobs.settings import Settings
from aijobs.store import read_job
from tests.faults import client_error, fail_after_calls, fail_calls, sqs_down
from tests.helpers import MovableClock, load_event
from tests.integration.conftest import AWS_ENV, KEY_A, PREFIX, TENANT_A, MotoWorld, api_client, make_settings
from tests.receiver import Answer, Receiver
from tests.simulation import Death, ProcessKilled, Simulator, TerminalWrites

TERMINAL = ("completed", "failed", "cancelled")


# --- the deployed settings, and the time to recover they give ----------------------------------------------------


@dataclass(frozen=True)
class Deployed:
    """What a deployed stack runs with: the settings' defaults (the template's parameter defaults) and the
    template's own figures."""

    settings: Settings
    sweep_period_s: int  # SweeperFunction's rate
    jobs_visibility_s: int  # JobsQueue's visibility timeout
    api_timeout_s: int  # ApiFunction's timeout: an Idempotency-Key held by a dead request is free after it
    # Lambda retries a failed asynchronous invoke (a schedule fire) after about a minute, then two.
    async_retry_s: int = 60

    @classmethod
    def load(cls) -> Deployed:
        resources = load_template()["Resources"]
        rate = parse_expression(resources["SweeperFunction"]["Properties"]["Events"]["Sweep"]["Properties"]["Schedule"])
        assert isinstance(rate, RateExpression)
        return cls(settings=Settings.model_construct(), sweep_period_s=int(rate.period.total_seconds()),
                   jobs_visibility_s=int(resources["JobsQueue"]["Properties"]["VisibilityTimeout"]),
                   api_timeout_s=int(resources["ApiFunction"]["Properties"]["Timeout"]))

    def backoff_s(self, attempt: int) -> float:
        """The longest wait before the retry after ``attempt`` (jitter adds up to 25 %)."""
        s = self.settings
        return float(min(s.retry_max_delay_s, s.retry_base_delay_s * 2 ** (attempt - 1) * 1.25))

    def backoffs_s(self, retries: int) -> float:
        return sum(self.backoff_s(a) for a in range(1, retries + 1))

    def webhook_wait_s(self, attempt: int) -> float:
        """The longest wait before webhook attempt ``attempt`` + 1 (jitter adds up to 10 %)."""
        return self.settings.webhook_retry_schedule[attempt] * 1.1


@dataclass(frozen=True)
class Recovery:
    """How long the deployed stack takes, at most, from the fault to every job ended and its webhook answered
    (None: nothing to recover), and how that follows from the settings."""

    seconds: float | None
    formula: str


# --- what a scenario expects and what it found -------------------------------------------------------------------


@dataclass
class Expect:
    """What one submission (one prompt) must come to."""

    label: str
    prompt: str
    status: str = "completed"
    error_type: str | None = None
    error_code: str | None = None
    attempts: int | None = None  # its attempt count at the end, when the scenario fixes it
    calls: int | None = None  # its model calls, when the scenario fixes them
    webhook: Literal["delivered", "refused", "none"] = "delivered"
    job_id: str | None = None  # found by id instead of prompt (its stored request cannot be read)


@dataclass
class Outcome:
    expect: Expect
    jobs: list[Job]
    terminal_writes: int
    calls: int  # requests the worker made to the model (counted at the provider)
    model_seen: int  # requests the fake model got
    webhook_requests: int = 0  # what its receiver got
    webhook_accepted: int = 0  # of those, the 2xx answers its sender heard
    webhook_tries: int = 0  # attempts in its delivery ledger
    done_at: float | None = None

    @property
    def job(self) -> Job | None:
        return self.jobs[0] if len(self.jobs) == 1 else None

    @property
    def lost(self) -> bool:
        return not self.jobs or any(j.status.value not in TERMINAL for j in self.jobs)

    @property
    def doubled(self) -> bool:
        return len(self.jobs) > 1 or self.terminal_writes > 1 or self.calls > sum(j.attempt for j in self.jobs)


@dataclass
class Report:
    family: str
    variant: str
    recovery: Recovery
    outcomes: list[Outcome] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what else happened, for the record
    simulated_s: float | None = None  # the same, measured on the rig's clock (its settings, its sweep phase)

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.violations.append(message)

    @property
    def submitted(self) -> int:
        return len(self.outcomes)

    @property
    def lost(self) -> int:
        return sum(o.lost for o in self.outcomes)

    @property
    def doubled(self) -> int:
        return sum(o.doubled for o in self.outcomes)

    @property
    def calls_per_job(self) -> float:
        return sum(o.calls for o in self.outcomes) / max(1, self.submitted)

    def per_event(self, kind: str) -> dict[str, float] | None:
        """Over the final events whose receiver ``kind`` ("delivered": works in the end, "refused": never does):
        2xx answers heard, requests the receiver got and attempts in the ledger, per event."""
        events = [o for o in self.outcomes if o.expect.webhook == kind]
        if not events:
            return None
        return {name: round(sum(getattr(o, f"webhook_{name}") for o in events) / len(events), 2)
                for name in ("accepted", "requests", "tries")}

    def summary(self) -> dict[str, Any]:
        seconds, simulated = self.recovery.seconds, self.simulated_s
        return {"family": self.family, "variant": self.variant, "submitted": self.submitted, "lost": self.lost,
                "doubled": self.doubled, "model_calls_per_job": round(self.calls_per_job, 2),
                "webhooks_per_event": self.per_event("delivered"),
                "refused_webhooks_per_event": self.per_event("refused"),
                "recover_s": round(seconds, 1) if seconds is not None else None,
                "recover_formula": self.recovery.formula,
                "simulated_s": round(simulated) if simulated is not None else None,
                "notes": self.notes, "violations": self.violations}


# --- the rig: services on moto, the handlers, a faulty provider, a receiver, the simulator ------------------------


class FaultyProvider(ModelProvider):
    """The real provider, counting the calls of each prompt. A prompt holding ``[[kill=N]]`` (``[[kill=always]]``)
    kills the worker at its first N model calls (at every one), before the request goes out: after the claim.

    ``hold_until_killed(prompts)`` makes those prompts' first calls wait at the door until the worker is killed,
    and the kill wait until they all do: a batch that dies with its mates about to call the model.
    """

    KILL = re.compile(r"\[\[kill=(\d+|always)\]\]")

    def __init__(self, real: ModelProvider, death: Death) -> None:
        self.real = real
        self.death = death
        self.calls: Counter[str] = Counter()
        self.kills: Counter[str] = Counter()
        self._held: set[str] = set()

    def hold_until_killed(self, prompts: set[str]) -> None:
        self._held = set(prompts)

    async def stream(self, request: JobRequest, *, model: str) -> AsyncIterator[StreamEvent]:
        prompt = str(request.input)
        if prompt in self._held:
            self._held.discard(prompt)
            await asyncio.sleep(5)  # the death cancels this wait, with the rest of the invocation
        if (kill := self.KILL.search(prompt)) and (kill[1] == "always" or self.kills[prompt] < int(kill[1])):
            self.kills[prompt] += 1
            deadline = time.monotonic() + 3
            while self._held and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            self.death.kill()
        if self.death.dead.is_set():
            raise ProcessKilled
        self.calls[prompt] += 1
        async for event in self.real.stream(request, model=model):
            yield event


@dataclass
class InvocationContext(FakeLambdaContext):
    """A Lambda context with a given time left: Powertools holds an Idempotency-Key for a request that dies no
    longer than its invocation's time left."""

    remaining_ms: int = 29_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class ApiAnswer:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Rig:
    services: Services
    sim: Simulator
    writes: TerminalWrites
    provider: FaultyProvider
    model: UvicornThread
    receiver: Receiver
    api: Any  # the FastAPI app in-process (TestClient), for reads
    api_handler: Any  # functions/api/app.py's handler (Mangum), for the requests a fault hits
    deployed: Deployed
    nonce: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    expects: list[Expect] = field(default_factory=list)

    @property
    def clock(self) -> MovableClock:
        clock = self.services.clock
        assert isinstance(clock, MovableClock)
        return clock

    def expect(self, label: str, **fields: Any) -> Expect:
        expect = Expect(label=label, prompt=f"{label} #{self.nonce}", **fields)
        self.expects.append(expect)
        return expect

    def job_fields(self, expect: Expect) -> dict[str, Any]:
        fields: dict[str, Any] = {"input": expect.prompt}
        if expect.webhook != "none":
            fields["callback_url"] = f"{self.receiver.url}/hook"
        return fields

    def submit(self, expect: Expect, **fields: Any) -> str:
        request = JobRequest.model_validate({**self.job_fields(expect), **fields})
        return self.services.jobs.submit_job(tenant=TENANT_A, request=request).id

    def call_api(self, method: str, path: str, body: Any = None, *, idempotency_key: str | None = None,
                 remaining_ms: int = 29_000) -> ApiAnswer:
        """One request through functions/api/app.py (Mangum), as API Gateway's HTTP API sends it."""
        event = load_event("api_submit_job")
        event["requestContext"]["http"]["method"] = method
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["pathParameters"]["proxy"] = path.lstrip("/")
        event["requestContext"]["requestId"] = uuid.uuid4().hex
        event["headers"].pop("idempotency-key", None)
        event["headers"]["authorization"] = f"Bearer {KEY_A}"
        if idempotency_key is not None:
            event["headers"]["idempotency-key"] = idempotency_key
        event["body"] = json.dumps(body) if body is not None else None
        response = self.api_handler(event, InvocationContext("ApiFunction", remaining_ms=remaining_ms))
        headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
        body = response.get("body") or "null"
        return ApiAnswer(response["statusCode"], headers,
                         json.loads(body) if headers.get("content-type") == "application/json" else body)

    def model_count(self, prompt: str) -> int:
        """The calls the fake model got for a prompt: what ``GET /_stats?prompt=`` answers, read in-process (over
        HTTP it costs 50 ms a prompt here)."""
        app: Any = self.model.server.config.app
        return int(app.state.calls[f"prompt:{prompt}"])

    def kill_on_complete(self, job_id: str) -> None:
        """The worker dies once after the model answered, before the result is recorded."""
        store = self.services.store
        real = store.complete_job
        killed = threading.Event()

        def complete_job(job: Job, **fields: Any) -> Job | None:
            if job.id == job_id and not killed.is_set():
                killed.set()
                self.sim.death.kill()
            return real(job, **fields)

        store.complete_job = complete_job  # type: ignore[method-assign]

    def jobs_table_calls(self) -> Callable[[dict[str, Any]], bool]:
        """The calls on the jobs table's job items (not on a keyed request's reserved ids)."""
        table = self.services.settings.jobs_table
        return lambda params: ((params.get("TableName") == table or table in params.get("RequestItems", {}))
                               and "REQUEST#" not in str(params.get("Item", "")))

    def queue_depth(self, url: str) -> int:
        attributes = self.services.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed"])["Attributes"]
        return sum(int(v) for v in attributes.values())

    def stored_jobs(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        scan: dict[str, Any] = {"FilterExpression": Attr("sk").eq("JOB"), "ConsistentRead": True}
        while True:
            page = self.services.table.scan(**scan)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                return items
            scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def ledger(self, job_id: str) -> list[dict[str, Any]]:
        """The job's delivery ledger, as ``GET /v1/jobs/{id}/deliveries`` answers it."""
        data: list[dict[str, Any]] = self.api.get(f"/v1/jobs/{job_id}/deliveries").json()["data"]
        return data

    # --- the end: drive everything, then check the promise --------------------------------------------------------

    def settle(self, report: Report, *, fault_at: float) -> None:
        """Run everything to its end on the clock, then check every submission against the promise."""
        self.sim.run()
        items = self.stored_jobs()
        by_prompt: dict[str, list[Job]] = {}
        by_id = {}
        for item in items:
            job = read_job(item)
            by_id[job.id] = job
            prompt = item.get("request", {}).get("input")
            if isinstance(prompt, str):
                by_prompt.setdefault(prompt, []).append(job)
        received = self.receiver.settled()
        claimed: set[str] = set()
        for expect in self.expects:
            jobs = [by_id[expect.job_id]] if expect.job_id in by_id else by_prompt.get(expect.prompt, [])
            claimed |= {j.id for j in jobs}
            report.outcomes.append(self._outcome(report, expect, jobs, received))
        report.check(not set(by_id) - claimed, f"jobs nobody submitted: {sorted(set(by_id) - claimed)}")
        report.check(all(j.status.value in TERMINAL for j in by_id.values()),
                     f"jobs left unfinished: {[j.id for j in by_id.values() if j.status.value not in TERMINAL]}")
        settings = self.services.settings
        for url in (settings.jobs_queue_url, settings.deliveries_queue_url):
            report.check(self.queue_depth(url) == 0, f"messages left on {url.rsplit('/', 1)[-1]}")
        events = {j.webhook_event_id for j in by_id.values() if j.webhook_event_id}
        strays = {r.headers.get("webhook-id") for r in received} - events
        report.check(not strays, f"webhooks of no job's final event: {strays}")
        done = [o.done_at for o in report.outcomes if o.done_at is not None]
        report.simulated_s = max(0.0, max(done) - fault_at) if done else None

    def _outcome(self, report: Report, expect: Expect, jobs: list[Job], received: list[Any]) -> Outcome:
        calls = self.provider.calls[expect.prompt] if expect.job_id is None else 0
        outcome = Outcome(expect=expect, jobs=jobs, terminal_writes=sum(self.writes.count[j.id] for j in jobs),
                          calls=calls, model_seen=self.model_count(expect.prompt) if expect.job_id is None else 0)
        name = expect.label
        report.check(len(jobs) == 1, f"{name}: {len(jobs)} jobs stored, not one")
        if (job := outcome.job) is None:
            return outcome
        report.check(job.status.value == expect.status, f"{name}: {job.status.value}, not {expect.status}")
        report.check(outcome.terminal_writes == 1, f"{name}: ended {outcome.terminal_writes} times, not once")
        if expect.error_type is not None or expect.error_code is not None:
            error = job.error
            found = (error.type, error.code) if error is not None else (None, None)
            report.check((expect.error_type or found[0], expect.error_code or found[1]) == found,
                         f"{name}: error {found}, not ({expect.error_type}, {expect.error_code})")
        if expect.attempts is not None:
            report.check(job.attempt == expect.attempts, f"{name}: {job.attempt} attempts, not {expect.attempts}")
        if expect.calls is not None:
            report.check(calls == expect.calls, f"{name}: {calls} model calls, not {expect.calls}")
        report.check(calls <= job.attempt, f"{name}: {calls} model calls in {job.attempt} attempts")
        if job.status.value == "completed" and job.attempt == 1:
            report.check(calls == 1, f"{name}: succeeded at its first attempt with {calls} model calls")
        report.check(outcome.model_seen <= calls, f"{name}: the model got {outcome.model_seen} calls, "
                                                  f"the worker made {calls}")
        outcome.done_at = float(job.completed_at) if job.completed_at is not None else None
        self._webhook(report, outcome, job, received)
        return outcome

    def _webhook(self, report: Report, outcome: Outcome, job: Job, received: list[Any]) -> None:
        expect, name = outcome.expect, outcome.expect.label
        mine = [r for r in received if json.loads(r.body).get("data", {}).get("id") == job.id]
        outcome.webhook_requests = len(mine)
        outcome.webhook_accepted = sum(1 for r in mine if r.answered is not None and 200 <= r.answered < 300)
        if expect.webhook == "none":
            report.check(not mine, f"{name}: {len(mine)} webhooks for a job without callback_url")
            return
        report.check({r.headers.get("webhook-id") for r in mine} <= {job.webhook_event_id},
                     f"{name}: its webhooks carry more than one webhook-id")
        ledger = self.ledger(job.id)
        outcome.webhook_tries = len(ledger)
        if ledger:
            last = ledger[-1]["at"]
            outcome.done_at = max(outcome.done_at or 0.0, float(last))
        if expect.webhook == "delivered":
            report.check(outcome.webhook_accepted == 1,
                         f"{name}: its receiver accepted its event {outcome.webhook_accepted} times, not once")
            report.check(bool(ledger) and ledger[-1]["outcome"] == "delivered",
                         f"{name}: the ledger does not end delivered: {[a['outcome'] for a in ledger]}")
        else:
            report.check(outcome.webhook_accepted == 0, f"{name}: a refusing receiver accepted its event")


DEV_CALLBACKS = {"allow_private_callbacks": True, "allow_http_callbacks": True}


@contextmanager
def rig(aws: tuple[boto3.session.Session, LocalResources], fake_model: UvicornThread, deployed: Deployed,
        **overrides: Any) -> Iterator[Rig]:
    """Services with the deployed settings (but receivers on 127.0.0.1 allowed) on a moto world just reset, with
    tenant A, installed as the process's services; the handlers, a faulty provider, a receiver and the simulator
    around them. ``overrides`` change settings (e.g. ``model_base_url``)."""
    session, resources = aws
    base = make_settings(resources, fake_model.url)
    keep = {name: getattr(deployed.settings, name) for name in (
        "retry_base_delay_s", "max_attempts", "job_lease_s", "sweep_grace_s", "webhook_retry_schedule")}
    settings = base.model_copy(update={**keep, **DEV_CALLBACKS, **overrides})
    svc = Services(settings=settings, session=session, clock=MovableClock())
    svc.tenants.add_api_key(TENANT_A, KEY_A)
    set_services(svc)
    receiver = Receiver().start()
    removers: list[Callable[[], None]] = []
    try:
        writes = TerminalWrites(svc)
        removers.append(writes.install())
        sim = Simulator.create(svc, sweep_period_s=deployed.sweep_period_s, queue_arns=resources.arns)
        removers.append(sim.install())
        provider = FaultyProvider(svc.worker.provider, sim.death)
        svc.worker.provider = provider
        with api_client() as api:
            yield Rig(services=svc, sim=sim, writes=writes, provider=provider, model=fake_model,
                      receiver=receiver, api=api, api_handler=load_handler("api", "handler"), deployed=deployed)
    finally:
        for remove in removers:
            remove()
        receiver.stop()
        set_services(None)


# --- the scenarios ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    family: str
    name: str
    run: Callable[[Rig, Report], None]
    recovery: Callable[[Deployed], Recovery]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.family}: {self.name}"


def run_scenario(scenario: Scenario, aws: tuple[boto3.session.Session, LocalResources],
                 fake_model: UvicornThread, deployed: Deployed | None = None) -> Report:
    deployed = deployed or Deployed.load()
    report = Report(scenario.family, scenario.name, scenario.recovery(deployed))
    with rig(aws, fake_model, deployed, **scenario_settings(scenario)) as r:
        scenario.run(r, report)
    return report


# --- duplicates ----------------------------------------------------------------------------------------------------


def _five_copies(rig: Rig, expect: Expect) -> list[dict[str, Any]]:
    job_id = rig.submit(expect)
    for _ in range(4):
        rig.services.jobs.queue.send_job(job_id)  # SQS delivers at least once
    copies = [m for _ in range(5) for m in rig.sim.receive(rig.sim.jobs, limit=1)]
    assert len(copies) == 5, f"{len(copies)} copies received"
    return copies


def duplicates_sequential(rig: Rig, report: Report) -> None:
    expect = rig.expect("five copies one after another", attempts=1, calls=1)
    fault_at = rig.clock()
    for message in _five_copies(rig, expect):
        rig.sim.invoke(rig.sim.jobs, [message])
    rig.settle(report, fault_at=fault_at)


def duplicates_one_batch(rig: Rig, report: Report) -> None:
    expect = rig.expect("five copies in one batch", attempts=1, calls=1)
    fault_at = rig.clock()
    rig.sim.invoke(rig.sim.jobs, _five_copies(rig, expect))
    rig.settle(report, fault_at=fault_at)


def duplicates_concurrent(rig: Rig, report: Report) -> None:
    expect = rig.expect("five copies in five concurrent invocations", attempts=1, calls=1)
    fault_at = rig.clock()
    copies = _five_copies(rig, expect)
    start = threading.Barrier(len(copies))

    def invoke(message: dict[str, Any]) -> str:
        start.wait(timeout=5)
        return rig.sim.invoke(rig.sim.jobs, [message])

    with ThreadPoolExecutor(len(copies)) as pool:
        report.check(list(pool.map(invoke, copies)) == ["ok"] * 5, "an invocation failed")
    rig.settle(report, fault_at=fault_at)


def _duplicate_recovery(d: Deployed) -> Recovery:
    return Recovery(0, f"none: claims are conditional; a copy of a running job returns after the lease "
                       f"({d.settings.job_lease_s} s + 5 s) and ends without running")


# --- a worker that dies -------------------------------------------------------------------------------------------


def killed_after_claim(rig: Rig, report: Report) -> None:
    rig.submit(rig.expect("killed after the claim [[kill=1]]", attempts=2, calls=1))
    fault_at = rig.clock()
    rig.settle(report, fault_at=fault_at)


def killed_after_model(rig: Rig, report: Report) -> None:
    expect = rig.expect("killed after the model answered", attempts=2, calls=2)
    rig.kill_on_complete(rig.submit(expect))
    fault_at = rig.clock()
    rig.settle(report, fault_at=fault_at)


def crash_loop(rig: Rig, report: Report) -> None:
    attempts = rig.services.settings.max_attempts
    expect = rig.expect("killed on every attempt [[kill=always]]", status="failed", error_code="attempts_exhausted",
                        attempts=attempts + 1, calls=0)
    rig.submit(expect)
    fault_at = rig.clock()
    rig.settle(report, fault_at=fault_at)
    report.check(rig.provider.kills[expect.prompt] == attempts,
                 f"it killed the worker {rig.provider.kills[expect.prompt]} times, not {attempts}")


def killed_mid_batch(rig: Rig, report: Report) -> None:
    attempts = rig.services.settings.max_attempts
    killer = rig.expect("killer among nine [[kill=always]]", status="failed", error_code="attempts_exhausted",
                        attempts=attempts + 1, calls=0)
    mates = [rig.expect(f"healthy batch-mate {i}", attempts=2, calls=1) for i in range(9)]
    for expect in (killer, *mates):
        rig.submit(expect)
    # The process dies with the nine claimed and about to call the model.
    rig.provider.hold_until_killed({m.prompt for m in mates})
    fault_at = rig.clock()
    messages = rig.sim.receive(rig.sim.jobs)
    report.check(len(messages) == 10, f"the batch holds {len(messages)} jobs, not 10")
    report.check(rig.sim.invoke(rig.sim.jobs, messages) == "died", "the invocation did not die")
    rig.settle(report, fault_at=fault_at)
    report.check(rig.provider.kills[killer.prompt] == attempts, "the killer ran more than its attempts")


def _death_recovery(d: Deployed) -> Recovery:
    lease, period = d.settings.job_lease_s, d.sweep_period_s
    return Recovery(lease + period, f"lease {lease} s + one sweep period {period} s; the copy in flight returns "
                                    f"after the queue's {d.jobs_visibility_s} s and does nothing")


def _crash_loop_recovery(d: Deployed) -> Recovery:
    lease, period, attempts = d.settings.job_lease_s, d.sweep_period_s, d.settings.max_attempts
    return Recovery(attempts * (lease + period), f"failed after max_attempts {attempts} x (lease {lease} s + "
                                                 f"sweep {period} s)")


def _mid_batch_recovery(d: Deployed) -> Recovery:
    lease, period, attempts = d.settings.job_lease_s, d.sweep_period_s, d.settings.max_attempts
    return Recovery(attempts * (lease + period), f"mates: lease {lease} s + 2 sweeps {2 * period} s (the killer "
                                                 f"may die first once more); killer failed after {attempts} x "
                                                 f"({lease} + {period}) s")


# --- a crash between sending a job's message and storing the job --------------------------------------------------


def _retry_until_accepted(rig: Rig, report: Report, send: Callable[[], ApiAnswer]) -> ApiAnswer:
    """A client's retries with its Idempotency-Key: a 409 says when (Retry-After); bounded in wall time, because
    the key's hold by a dead request runs on Powertools' (real) clock."""
    deadline = time.monotonic() + 5
    while True:
        answer = send()
        if answer.status != 409 or time.monotonic() > deadline:
            return answer
        report.check("retry-after" in answer.headers, "a 409 without Retry-After")
        time.sleep(0.05)


def _submit_with_fault(rig: Rig, report: Report, *, dies: bool) -> None:
    expect = rig.expect(f"submit whose store {'dies' if dies else 'fails'} after the send")
    body, key = rig.job_fields(expect), f"submit-{rig.nonce}"
    client = rig.services.dynamodb.meta.client
    error: Callable[[str], BaseException] = (
        (lambda op: ProcessKilled()) if dies else (lambda op: client_error("InternalServerError", op)))
    remove = fail_calls(client, "PutItem", error=error, when=rig.jobs_table_calls())
    fault_at = rig.clock()
    try:
        # A request that dies has 500 ms of its invocation left: the key is held that long (29 s at worst).
        first = rig.call_api("POST", "/v1/jobs", body, idempotency_key=key, remaining_ms=500)
    finally:
        remove()
    if dies:
        report.check(first.status >= 500, f"the dead request answered {first.status}")
    else:
        report.check(first.status == 503 and first.body["error"]["retryable"] is True
                     and first.headers.get("retry-after") == "1", f"the failed store answered {first.status}")
    report.check(rig.stored_jobs() == [], "a job was stored by the request that failed")
    report.check(rig.queue_depth(rig.services.settings.jobs_queue_url) == 1, "its message did not go out first")
    rig.clock.advance(1)  # the client waits as Retry-After says
    again = _retry_until_accepted(rig, report, lambda: rig.call_api("POST", "/v1/jobs", body, idempotency_key=key))
    replay = rig.call_api("POST", "/v1/jobs", body, idempotency_key=key)
    report.check(again.status == 202, f"the retry answered {again.status}")
    report.check(replay.status == 202 and replay.body["id"] == again.body["id"]
                 and replay.headers.get("idempotent-replayed") == "true", "the replay is not the retry's job")
    rig.settle(report, fault_at=fault_at)


def submit_store_fails(rig: Rig, report: Report) -> None:
    _submit_with_fault(rig, report, dies=False)


def submit_dies_after_send(rig: Rig, report: Report) -> None:
    _submit_with_fault(rig, report, dies=True)


def _batch_with_fault(rig: Rig, report: Report, *, dies: bool) -> None:
    # The death comes before the first write; the failure after it: the items are stored, the answer is an error
    # (a timeout, say), so what was stored must be taken back.
    expects = [rig.expect(f"batch item {i} whose store {'dies' if dies else 'fails'}", webhook="none")
               for i in range(12)]
    body, key = {"jobs": [rig.job_fields(e) for e in expects]}, f"batch-{rig.nonce}"
    client = rig.services.dynamodb.meta.client
    if dies:
        remove = fail_calls(client, "BatchWriteItem", error=lambda op: ProcessKilled())
    else:
        remove = fail_after_calls(client, "BatchWriteItem", error=lambda op: client_error("InternalServerError", op),
                                  when=lambda n: n == 1)
    fault_at = rig.clock()
    try:
        first = rig.call_api("POST", "/v1/jobs/batch", body, idempotency_key=key, remaining_ms=500)
    finally:
        remove()
    report.check(first.status == (500 if dies else 503), f"the faulty batch answered {first.status}")
    report.check(rig.stored_jobs() == [], "jobs of the batch that failed are stored")
    rig.clock.advance(1)
    again = _retry_until_accepted(rig, report,
                                  lambda: rig.call_api("POST", "/v1/jobs/batch", body, idempotency_key=key))
    report.check(again.status == 202 and len(again.body["data"]) == len(expects), f"the retry answered {again.status}")
    rig.settle(report, fault_at=fault_at)


def batch_store_fails(rig: Rig, report: Report) -> None:
    _batch_with_fault(rig, report, dies=False)


def batch_dies_after_send(rig: Rig, report: Report) -> None:
    _batch_with_fault(rig, report, dies=True)


def _fire_with_fault(rig: Rig, report: Report, *, fault: Literal["fails", "dies", "dies after the write"]) -> None:
    expect = rig.expect(f"schedule fire whose store {fault}")
    schedule = rig.api.post("/v1/schedules", json={"expression": "rate(1 hour)", "job": rig.job_fields(expect)})
    report.check(schedule.status_code == 201, f"the schedule was not created: {schedule.status_code}")
    fire = {"schedule_id": schedule.json()["id"], "tenant": TENANT_A, "scheduled_time": "2026-12-01T09:00:00Z"}
    handler = load_handler("scheduler", "lambda_handler")
    client = rig.services.dynamodb.meta.client
    if fault == "fails":
        remove = fail_calls(client, "PutItem", error=lambda op: client_error("InternalServerError", op),
                            when=rig.jobs_table_calls())
    elif fault == "dies":
        remove = fail_calls(client, "PutItem", error=lambda op: ProcessKilled(), when=rig.jobs_table_calls())
    else:
        remove = fail_after_calls(client, "PutItem", error=lambda op: ProcessKilled())
    fault_at = rig.clock()
    try:
        handler(fire, FakeLambdaContext("SchedulerFunction"))
        report.check(False, "the faulty fire did not fail")
    except (Exception, ProcessKilled):  # Lambda retries an asynchronous invoke that failed
        pass
    finally:
        remove()
    rig.clock.advance(rig.deployed.async_retry_s)
    outcomes = [handler(fire, FakeLambdaContext("SchedulerFunction"))["outcome"] for _ in range(2)]
    first = "duplicate" if fault == "dies after the write" else "created"
    report.check(outcomes == [first, "duplicate"], f"the fire's retries came to {outcomes}")
    rig.settle(report, fault_at=fault_at)


def fire_store_fails(rig: Rig, report: Report) -> None:
    _fire_with_fault(rig, report, fault="fails")


def fire_dies_after_send(rig: Rig, report: Report) -> None:
    _fire_with_fault(rig, report, fault="dies")


def fire_dies_after_write(rig: Rig, report: Report) -> None:
    _fire_with_fault(rig, report, fault="dies after the write")


# --- a crash after the jobs were stored, before the request's answer was recorded ----------------------------------


def _dies_before_the_answer(rig: Rig, report: Report, *, batch: bool) -> None:
    # A keyed request's first try stores its jobs (a batch of 30: 25, then the death before the other 5) and dies
    # before Powertools records its answer; once the key's hold has passed, the retry names the same jobs.
    count = 30 if batch else 1
    expects = [rig.expect(f"{'batch item' if batch else 'submit'} {i} that dies before its answer",
                          **({"webhook": "none"} if batch else {})) for i in range(count)]
    path, body = (("/v1/jobs/batch", {"jobs": [rig.job_fields(e) for e in expects]}) if batch
                  else ("/v1/jobs", rig.job_fields(expects[0])))
    key = f"answer-{rig.nonce}"
    client = rig.services.dynamodb.meta.client
    # The submit's second PutItem is its job (the first reserves the key's ids); the batch's first BatchWriteItem
    # is its first 25 jobs.
    operation, nth = ("BatchWriteItem", 1) if batch else ("PutItem", 2)
    remove = fail_after_calls(client, operation, error=lambda op: ProcessKilled(), when=lambda n: n == nth)
    fault_at = rig.clock()
    try:
        first = rig.call_api("POST", path, body, idempotency_key=key, remaining_ms=500)
    finally:
        remove()
    stored = {job["id"] for job in rig.stored_jobs()}
    report.check(first.status >= 500 and len(stored) == (25 if batch else 1),
                 f"the dead request answered {first.status} with {len(stored)} jobs stored")
    rig.clock.advance(1)
    again = _retry_until_accepted(rig, report, lambda: rig.call_api("POST", path, body, idempotency_key=key))
    ids = [item["id"] for item in again.body["data"]] if batch else [again.body.get("id")]
    report.check(again.status == 202 and stored <= set(ids) and len(set(ids)) == count,
                 f"the retry answered {again.status} with other jobs than the first try stored")
    rig.settle(report, fault_at=fault_at)


def submit_dies_before_answer(rig: Rig, report: Report) -> None:
    _dies_before_the_answer(rig, report, batch=False)


def batch_dies_between_writes(rig: Rig, report: Report) -> None:
    _dies_before_the_answer(rig, report, batch=True)


def _client_retry_recovery(d: Deployed) -> Recovery:
    return Recovery(1, "the client's retry after Retry-After: 1 s (nothing was stored; the message sent first "
                       "finds no job and is dropped)")


def _dead_request_recovery(d: Deployed) -> Recovery:
    return Recovery(d.api_timeout_s + 1, f"the dead request holds its Idempotency-Key for its time left, at most the "
                                         f"API timeout {d.api_timeout_s} s; then the retry (Retry-After 1 s)")


def _fire_recovery(d: Deployed) -> Recovery:
    return Recovery(d.async_retry_s, f"Lambda retries the fire after about {d.async_retry_s} s (a fire names its "
                                     "job: the retry finds or makes the same one)")


# --- SQS sends that fail -------------------------------------------------------------------------------------------


def third_batch_send_fails(rig: Rig, report: Report) -> None:
    expects = [rig.expect(f"batch item {i}, third send fails", webhook="none") for i in range(21)]  # 10, 10, 1
    body, key = {"jobs": [rig.job_fields(e) for e in expects]}, f"sends-{rig.nonce}"
    sends = {"n": 0}

    def third(params: dict[str, Any]) -> bool:
        sends["n"] += 1
        return sends["n"] == 3

    remove = fail_calls(rig.services.sqs, "SendMessageBatch", when=third,
                        error=lambda op: client_error("InternalError", op))
    fault_at = rig.clock()
    try:
        first = rig.call_api("POST", "/v1/jobs/batch", body, idempotency_key=key)
    finally:
        remove()
    report.check(first.status == 503 and first.headers.get("retry-after") == "1", f"answered {first.status}")
    report.check(rig.stored_jobs() == [], "jobs of the failed batch are stored")
    rig.clock.advance(1)
    again = rig.call_api("POST", "/v1/jobs/batch", body, idempotency_key=key)
    replay = rig.call_api("POST", "/v1/jobs/batch", body, idempotency_key=key)
    report.check(again.status == 202 and replay.body == again.body, "the retry and its replay differ")
    rig.settle(report, fault_at=fault_at)


def deliveries_queue_down(rig: Rig, report: Report) -> None:
    rig.submit(rig.expect("webhook not queued", attempts=1, calls=1))
    fault_at = rig.clock()
    with sqs_down(rig.services, queue_url=rig.services.settings.deliveries_queue_url):
        rig.sim.poll(rig.sim.jobs)
    report.check(rig.receiver.received == [], "a webhook went out while its queue was down")
    rig.settle(report, fault_at=fault_at)


def _lost_webhook_recovery(d: Deployed) -> Recovery:
    lease, period = d.settings.job_lease_s, d.sweep_period_s
    return Recovery(lease + period, f"the rest of the job's lease (< {lease} s; it stays in the sweep index till "
                                    f"then) + one sweep period {period} s")


# --- the model provider fails -------------------------------------------------------------------------------------


def _provider(directives: str, *, status: str = "completed", attempts: int, error_type: str | None = None,
              error_code: str | None = None, waits_s: int = 0, **fields: Any) -> Callable[[Rig, Report], None]:
    def run(rig: Rig, report: Report) -> None:
        text = directives
        if "{http_date}" in text:  # Retry-After as an HTTP date, read against the wall clock as a provider sends it
            text = text.format(http_date=format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True))
        expect = rig.expect(f"provider {text}", status=status, attempts=attempts, calls=attempts,
                            error_type=error_type, error_code=error_code)
        job_id = rig.submit(expect, **fields)
        fault_at = rig.clock()
        rig.settle(report, fault_at=fault_at)
        job = rig.services.store.get_job(job_id)
        if waits_s and job is not None and job.completed_at is not None:
            report.check(job.completed_at - job.created_at >= waits_s - 5,
                         f"the retry came {job.completed_at - job.created_at} s later, not after {waits_s} s")
    return run


def backend_down(rig: Rig, report: Report) -> None:
    attempts = rig.services.settings.max_attempts
    rig.submit(rig.expect("backend down", status="failed", error_type="provider_error",
                          error_code="connection_error", attempts=attempts, calls=attempts))
    fault_at = rig.clock()
    rig.settle(report, fault_at=fault_at)


def _retry_after_recovery(seconds: int, form: str) -> Callable[[Deployed], Recovery]:
    return lambda d: Recovery(seconds, f"the provider's {form} ({seconds} s), longer than the backoff "
                                       f"{d.backoff_s(1):g} s")


def _backoff_recovery(retries: int, *, per_attempt_s: int = 0, gives_up: bool = False) -> Callable[[Deployed],
                                                                                                      Recovery]:
    def recovery(d: Deployed) -> Recovery:
        waits = [d.backoff_s(a) for a in range(1, retries + 1)]
        total = sum(waits) + per_attempt_s * (retries + 1)
        formula = " + ".join(f"{w:g}" for w in waits) + " s of backoff"
        if per_attempt_s:
            formula += f" + {retries + 1} x timeout_s {per_attempt_s} s"
        formula += f" (base {d.settings.retry_base_delay_s:g} s x 2^n, jitter <= 25 %)"
        return Recovery(total, ("failed, with its last error, after " if gives_up else "") + formula)
    return recovery


# --- what the worker reads ----------------------------------------------------------------------------------------


def poison_bodies(rig: Rig, report: Report) -> None:
    expects = [rig.expect(f"batch-mate {i} of two poison bodies", attempts=1, calls=1) for i in range(8)]
    ids = [rig.submit(expect) for expect in expects]
    for body in ("not json at all", json.dumps({"job_id": "job_nope"})):
        rig.services.sqs.send_message(QueueUrl=rig.services.settings.jobs_queue_url, MessageBody=body)
    fault_at = rig.clock()
    messages = rig.sim.receive(rig.sim.jobs)
    report.check(len(messages) == 10, f"the batch holds {len(messages)} messages, not 10")
    rig.sim.invoke(rig.sim.jobs, messages)
    done = [job.status.value if (job := rig.services.store.get_job(i)) else None for i in ids]
    report.check(done == ["completed"] * 8, f"the eight did not complete in the poisons' invocation: {done}")
    rig.settle(report, fault_at=fault_at)
    dead = rig.queue_depth(rig.services.settings.jobs_dead_letter_queue_url)
    report.check(dead == 2, f"{dead} messages in the dead-letter queue, not the 2 poison bodies")


def unreadable_items(rig: Rig, report: Report) -> None:
    expects = [rig.expect(f"batch-mate {i} of two unreadable items", attempts=1, calls=1) for i in range(8)]
    for expect in expects:
        rig.submit(expect)
    table = rig.services.table
    # Written by another version: a request field this one does not know, and a field of another type.
    for n, (name, value) in enumerate((("prompt_v9", "a field this version never wrote"),
                                       ("metadata", ["not", "a", "map"]))):
        bad = rig.expect(f"unreadable item {n}", status="failed", error_code="job_unreadable", attempts=1, calls=0)
        bad.job_id = rig.submit(bad)
        table.update_item(Key={"pk": f"JOB#{bad.job_id}", "sk": "JOB"}, UpdateExpression="SET #r.#f = :v",
                          ExpressionAttributeNames={"#r": "request", "#f": name},
                          ExpressionAttributeValues={":v": value})
    fault_at = rig.clock()
    messages = rig.sim.receive(rig.sim.jobs)
    report.check(len(messages) == 10, f"the batch holds {len(messages)} messages, not 10")
    rig.sim.invoke(rig.sim.jobs, messages)
    rig.settle(report, fault_at=fault_at)


def _poison_recovery(d: Deployed) -> Recovery:
    return Recovery(0, "none for the others (same invocation); a poison body is made visible at once and moved "
                       "to the dead-letter queue after maxReceiveCount 10 receives")


def _unreadable_recovery(d: Deployed) -> Recovery:
    return Recovery(0, "none: an unreadable item fails with job_unreadable at its claim")


# --- webhook receivers that fail -----------------------------------------------------------------------------------


Attempt = tuple[str, int | None, str | None]  # a ledger row: outcome, status code, error


def _receiver(*answers: Answer, ledger: list[Attempt], down: bool = False,
              heard: list[int | None] | None = None, spacing_s: int = 0,
              webhook: Literal["delivered", "refused"] = "delivered") -> Callable[[Rig, Report], None]:
    """A receiver scripted with ``answers`` (then 200), or one that is down: the ledger must read ``ledger``
    (outcome, status code, error), and the receiver must have answered ``heard`` (None: the sender had gone)."""
    def run(rig: Rig, report: Report) -> None:
        rig.receiver.answer(*answers)
        label = "receiver down" if down else "receiver " + ", ".join(str(a.status) for a in answers)
        expect = rig.expect(label, attempts=1, calls=1, webhook=webhook)
        url = f"http://127.0.0.1:{free_port()}/hook" if down else None
        job_id = rig.submit(expect, **({"callback_url": url} if url else {}))
        fault_at = rig.clock()
        rig.settle(report, fault_at=fault_at)
        found = [(a["outcome"], a["status_code"], a["error"]) for a in rig.ledger(job_id)]
        report.check(found == ledger, f"the ledger reads {found}, not {ledger}")
        got = [r.answered for r in rig.receiver.settled()]
        report.check(got == (heard if heard is not None else []), f"the receiver answered {got}, not {heard}")
        report.check(len({r.headers["webhook-id"] for r in rig.receiver.received}) <= 1, "webhook-ids differ")
        if spacing_s:
            at = [a["at"] for a in rig.ledger(job_id)]
            report.check(at[1] - at[0] >= spacing_s, f"the retry came {at[1] - at[0]} s later, not {spacing_s} s")
    return run


def _schedule_spent(d: Deployed) -> list[Attempt]:
    retrying: Attempt = ("retrying", None, "connection_error")
    return [retrying] * (len(d.settings.webhook_retry_schedule) - 1) + [("failed", None, "connection_error")]


def _webhook_retry_recovery(extra_s: float = 0, what: str = "") -> Callable[[Deployed], Recovery]:
    def recovery(d: Deployed) -> Recovery:
        wait = d.webhook_wait_s(1)
        prefix = f"{what} {extra_s:g} s + " if what else ""
        return Recovery(extra_s + wait, f"{prefix}the schedule's 2nd wait {d.settings.webhook_retry_schedule[1]} s "
                                        "(+10 % jitter)")
    return recovery


def _receiver_down_recovery(d: Deployed) -> Recovery:
    waits = d.settings.webhook_retry_schedule
    total = sum(waits) * 1.1
    return Recovery(total, f"gives up after the whole schedule: sum {sum(waits)} s (+10 % jitter), "
                           f"{len(waits)} attempts, each in the ledger")


# --- concurrent requests with one Idempotency-Key -----------------------------------------------------------------


def concurrent_idempotent_posts(rig: Rig, report: Report) -> None:
    expect = rig.expect("twenty at once, one Idempotency-Key", attempts=1, calls=1)
    body, key = rig.job_fields(expect), f"twenty-{rig.nonce}"
    start = threading.Barrier(20)

    def post(_: int) -> Any:
        start.wait(timeout=5)
        return rig.api.post("/v1/jobs", json=body, headers={"Idempotency-Key": key})

    fault_at = rig.clock()
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(post, range(20)))
    ids = {a.json()["id"] for a in answers if a.status_code == 202}
    others = [a.status_code for a in answers
              if a.status_code != 202 and not (a.status_code == 409 and a.headers.get("retry-after"))]
    replayed = sum(1 for a in answers if a.headers.get("idempotent-replayed") == "true")
    accepted = sum(1 for a in answers if a.status_code == 202)
    report.notes.append(f"{accepted} answered 202 ({replayed} of them replays), {len(answers) - accepted} 409")
    report.check(len(ids) == 1, f"the 202s name {len(ids)} jobs")
    report.check(not others, f"answers neither the job nor a 409 with Retry-After: {others}")
    rig.settle(report, fault_at=fault_at)


# --- the families ----------------------------------------------------------------------------------------------------


def _scenarios() -> list[Scenario]:
    down_url = {"model_base_url": "http://127.0.0.1:{port}/v1"}
    return [
        Scenario("duplicates x5", "sequential", duplicates_sequential, _duplicate_recovery),
        Scenario("duplicates x5", "one batch", duplicates_one_batch, _duplicate_recovery),
        Scenario("duplicates x5", "concurrent", duplicates_concurrent, _duplicate_recovery),
        Scenario("worker killed", "after the claim", killed_after_claim, _death_recovery),
        Scenario("worker killed", "after the model answered", killed_after_model, _death_recovery),
        Scenario("worker killed", "on every attempt", crash_loop, _crash_loop_recovery),
        Scenario("worker killed", "mid-batch, 9 mates", killed_mid_batch, _mid_batch_recovery),
        Scenario("crash between send and store", "submit, store fails", submit_store_fails, _client_retry_recovery),
        Scenario("crash between send and store", "submit, dies after send", submit_dies_after_send,
                 _dead_request_recovery),
        Scenario("crash between send and store", "batch, store fails", batch_store_fails, _client_retry_recovery),
        Scenario("crash between send and store", "batch, dies after send", batch_dies_after_send,
                 _dead_request_recovery),
        Scenario("crash between send and store", "fire, store fails", fire_store_fails, _fire_recovery),
        Scenario("crash between send and store", "fire, dies after send", fire_dies_after_send, _fire_recovery),
        Scenario("crash between send and store", "fire, dies after store", fire_dies_after_write, _fire_recovery),
        Scenario("crash before the answer", "submit, dies after store", submit_dies_before_answer,
                 _dead_request_recovery),
        Scenario("crash before the answer", "batch, dies between writes", batch_dies_between_writes,
                 _dead_request_recovery),
        Scenario("SQS send errors", "3rd SendMessageBatch", third_batch_send_fails, _client_retry_recovery),
        Scenario("SQS send errors", "deliveries queue", deliveries_queue_down, _lost_webhook_recovery),
        Scenario("provider", "429 Retry-After s", _provider("[[fail=429,times=1]] [[retry_after=30]]", attempts=2,
                                                           waits_s=30), _retry_after_recovery(30, "Retry-After")),
        Scenario("provider", "429 HTTP date", _provider("[[fail=429,times=1]] [[retry_after={http_date}]]",
                                                       attempts=2, waits_s=85),
                 _retry_after_recovery(90, "Retry-After HTTP date")),
        Scenario("provider", "429 retry-after-ms", _provider("[[fail=429,times=1]] [[retry_after_ms=45000]]",
                                                            attempts=2, waits_s=45),
                 _retry_after_recovery(45, "retry-after-ms")),
        Scenario("provider", "500 twice", _provider("[[fail=500,times=2]]", attempts=3), _backoff_recovery(2)),
        Scenario("provider", "503 always", _provider("[[fail=503]]", status="failed", attempts=4,
                                                    error_type="provider_error", error_code="http_503"),
                 _backoff_recovery(3, gives_up=True)),
        Scenario("provider", "timeout", _provider("[[delay_ms=1500]]", status="failed", attempts=4,
                                                 error_type="provider_timeout", timeout_s=1),
                 _backoff_recovery(3, per_attempt_s=1, gives_up=True)),
        Scenario("provider", "backend down", backend_down, _backoff_recovery(3, gives_up=True), down_url),
        Scenario("poison", "2 bodies + 8", poison_bodies, _poison_recovery),
        Scenario("poison", "2 unreadable items + 8", unreadable_items, _unreadable_recovery),
        Scenario("webhook receiver", "500 then 200",
                 _receiver(Answer(500), ledger=[("retrying", 500, "http_500"), ("delivered", 200, None)],
                           heard=[500, 200]), _webhook_retry_recovery()),
        Scenario("webhook receiver", "times out, then 200",
                 _receiver(Answer(200, delay_s=0.6), ledger=[("retrying", None, "timeout"), ("delivered", 200, None)],
                           heard=[None, 200]),
                 lambda d: _webhook_retry_recovery(d.settings.webhook_timeout_s, "webhook_timeout_s")(d),
                 {"webhook_timeout_s": 0.3}),
        Scenario("webhook receiver", "429 Retry-After 120",
                 _receiver(Answer(429, {"Retry-After": "120"}), ledger=[("retrying", 429, "http_429"),
                                                                       ("delivered", 200, None)],
                           heard=[429, 200], spacing_s=120),
                 lambda d: Recovery(120, "the receiver's Retry-After 120 s")),
        Scenario("webhook receiver", "410",
                 _receiver(Answer(410), ledger=[("stopped", 410, "http_410")], heard=[410], webhook="refused"),
                 lambda d: Recovery(0, "none: 410 stops deliveries for good, at once")),
        Scenario("webhook receiver", "301 then 200",
                 _receiver(Answer(301, {"Location": "http://127.0.0.1:9/elsewhere"}),
                           ledger=[("retrying", 301, "http_301"), ("delivered", 200, None)], heard=[301, 200]),
                 _webhook_retry_recovery()),
        Scenario("webhook receiver", "down (closed port)",
                 lambda rig, report: _receiver(ledger=_schedule_spent(rig.deployed), down=True,
                                               webhook="refused")(rig, report),
                 _receiver_down_recovery),
        Scenario("idempotency", "20 concurrent POSTs, one key", concurrent_idempotent_posts,
                 lambda d: Recovery(0, "none: one job; a 409 asks to come back after Retry-After 1 s")),
    ]


SCENARIOS = _scenarios()
FAMILIES = list(dict.fromkeys(s.family for s in SCENARIOS))


@contextmanager
def standalone_world() -> Iterator[tuple[MotoWorld, UvicornThread]]:
    """What the integration fixtures give a test (moto provisioned from template.yaml, atomic like DynamoDB; the
    fake model on 127.0.0.1), outside pytest, for the bench: ``world.reset()`` before each scenario."""
    import os

    import botocore.session
    from moto import mock_aws

    from aijobs.local.emulator import make_dynamodb_atomic
    from aijobs.local.fake_model import create_fake_model
    from aijobs.local.template import provision

    saved = dict(os.environ)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "LAMBDA_TASK_ROOT"):  # a batch runs on its own event loop
        os.environ.pop(name, None)
    os.environ.update(AWS_ENV)
    model = UvicornThread(create_fake_model(), free_port())
    model.start()
    try:
        make_dynamodb_atomic()
        with mock_aws():
            template = load_template()
            loader = botocore.session.get_session().get_component("data_loader")
            resources = provision(template, session=boto3.session.Session(region_name="us-east-1"), prefix=PREFIX)
            yield MotoWorld(template=template, resources=resources, loader=loader), model
    finally:
        model.stop()
        os.environ.clear()
        os.environ.update(saved)


def scenario_settings(scenario: Scenario) -> dict[str, Any]:
    """The scenario's setting overrides, with a closed port put in where one is asked for."""
    return {k: v.format(port=free_port()) if isinstance(v, str) else v for k, v in scenario.settings.items()}
