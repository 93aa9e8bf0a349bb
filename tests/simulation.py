"""Lambda, SQS and the sweeper's schedule on the services' clock, for fault scenarios that span hours in a second.

What makes SQS wait is moved onto the clock (``MovableClock``) instead of the wall clock:
- a send with ``DelaySeconds`` is held back (answered as sent, through botocore's ``before-call`` hook) and sent
  for real when the clock reaches its due time;
- a ``ChangeMessageVisibility`` a handler makes (a retry in N seconds) is noted, and the message made visible
  again when the clock gets there (moto keeps it hidden in wall time, which in a test is for ever);
- a crashed invocation's batch, and a failed record whose visibility nobody changed, come back after the
  queue's own visibility timeout, as on Lambda.

``Simulator.run()`` is the event source mappings and EventBridge together: it hands every visible message to the
real handler files (functions/*/app.py), and when nothing is visible moves the clock to the next thing due (a
message, or a sweep: SweeperFunction runs every ``sweep_period_s``), until nothing is left to happen.
Nothing here sleeps: an hour of retries costs the handler calls it makes.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from boto3.dynamodb.conditions import Attr
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ClientError

from aijobs.local.pollers import FakeLambdaContext, sqs_event
from aijobs.local.stack import load_handler
from aijobs.services import Services
from tests.faults import register_hooks


class ProcessKilled(BaseException):
    """The process died (out of memory, a timeout, a crash): nothing of its invocation finishes, nothing is caught."""


@dataclass
class Death:
    """A process's death, made faithful: raising ``ProcessKilled`` unwinds the invocation (releasing its locks, so
    another task could start something on the way out), so once ``kill()`` is called every AWS call of the
    services' clients fails until the invocation is over, as nothing more leaves a dead process."""

    services: Services
    dead: threading.Event = field(default_factory=threading.Event)

    def kill(self) -> NoReturn:
        self.dead.set()
        raise ProcessKilled

    def install(self) -> Callable[[], None]:
        clients = [self.services.sqs, self.services.dynamodb.meta.client]
        for client in clients:
            client.meta.events.register("before-call", self._refuse)

        def remove() -> None:
            for client in clients:
                client.meta.events.unregister("before-call", self._refuse)
        return remove

    def _refuse(self, **_: Any) -> None:
        if self.dead.is_set():
            raise ProcessKilled


@dataclass(frozen=True)
class Queue:
    name: str  # the function the queue feeds
    url: str
    arn: str
    visibility_timeout_s: int
    handler: Any


@dataclass
class VirtualTimers:
    """The SQS timers of the services' client, on the services' clock (see the module's docstring)."""

    services: Services
    held: dict[str, float] = field(default_factory=dict)  # receipt handle -> when it is visible again
    changed: set[str] = field(default_factory=set)  # receipt handles whose visibility a handler changed
    deferred: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (due, SendMessage params)
    queue_of_handle: dict[str, str] = field(default_factory=dict)  # receipt handle -> its queue's URL
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sending: threading.local = field(default_factory=threading.local)

    def install(self) -> Callable[[], None]:
        return register_hooks(self.services.sqs.meta.events, [
            ("before-parameter-build.sqs.SendMessage", self._defer_delayed),
            ("before-call.sqs.SendMessage", self._answer_deferred),
            ("before-parameter-build.sqs.ChangeMessageVisibility", self._note_visibility),
        ])

    def _defer_delayed(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        delay = int(params.get("DelaySeconds") or 0)
        if delay > 0 and not getattr(self._sending, "now", False):
            context["virtual_delay"] = True
            with self._lock:
                self.deferred.append((self.services.clock() + delay, {**params, "DelaySeconds": 0}))

    def _answer_deferred(self, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if not context.get("virtual_delay"):
            return None
        return AWSResponse("", 200, HTTPHeaders(), None), {"MessageId": str(uuid.uuid4()), "ResponseMetadata": {}}

    def _note_visibility(self, params: dict[str, Any], **_: Any) -> None:
        handle, seconds = params["ReceiptHandle"], int(params["VisibilityTimeout"])
        with self._lock:
            self.changed.add(handle)
            if seconds > 0:
                self.held[handle] = self.services.clock() + seconds
            else:
                self.held.pop(handle, None)

    def hold(self, handle: str, until: float) -> None:
        with self._lock:
            self.held[handle] = until

    def next_due(self) -> float | None:
        with self._lock:
            dues = [*self.held.values(), *(due for due, _ in self.deferred)]
        return min(dues) if dues else None

    def release_due(self) -> None:
        """Make visible (or send) what the clock has reached."""
        now = self.services.clock()
        with self._lock:
            handles = [h for h, due in self.held.items() if due <= now]
            sends = [params for due, params in self.deferred if due <= now]
            self.deferred = [(due, params) for due, params in self.deferred if due > now]
        for handle in handles:
            try:
                self.services.sqs.change_message_visibility(QueueUrl=self.queue_of_handle[handle], ReceiptHandle=handle,
                                                            VisibilityTimeout=0)
            except ClientError:  # gone meanwhile (moved to the dead-letter queue): nothing to release
                with self._lock:
                    self.held.pop(handle, None)
        self._sending.now = True
        try:
            for params in sends:
                self.services.sqs.send_message(**params)
        finally:
            self._sending.now = False


@dataclass
class TerminalWrites:
    """Every successful write that sets a job's ``completed_at`` (a terminal transition), seen on the wire.

    Counted from the DynamoDB client's own calls (botocore hooks), whatever code path made them, so "a job ends
    exactly once" is checked against what was written, not against what the code meant to write.
    """

    services: Services
    count: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self) -> Callable[[], None]:
        return register_hooks(self.services.dynamodb.meta.client.meta.events,
                         [("before-parameter-build.dynamodb.UpdateItem", self._note),
                          ("after-call.dynamodb.UpdateItem", self._count)])

    def _note(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        names = params.get("ExpressionAttributeNames") or {}
        sets_completed = any(value == "completed_at" and f"{name} = " in params.get("UpdateExpression", "")
                             for name, value in names.items())
        table = params.get("TableName")
        if sets_completed and table == self.services.settings.jobs_table:
            pk = params["Key"]["pk"]
            context["terminal_job"] = str(pk["S"] if isinstance(pk, dict) else pk).removeprefix("JOB#")

    def _count(self, http_response: Any, context: dict[str, Any], **_: Any) -> None:
        if (job_id := context.get("terminal_job")) and http_response.status_code < 300:
            with self._lock:
                self.count[job_id] += 1


@dataclass
class Simulator:
    """The event source mappings, the sweeper's schedule and the clock, driven until nothing is left to happen."""

    services: Services
    jobs: Queue
    deliveries: Queue
    sweeper: Any  # functions/sweeper/app.py's handler
    sweep_period_s: int
    timers: VirtualTimers
    death: Death
    started_at: float
    next_sweep_at: float
    invocations: Counter[str] = field(default_factory=Counter)
    deaths: int = 0
    sweeps: int = 0

    @classmethod
    def create(cls, services: Services, *, sweep_period_s: int, queue_arns: dict[str, str]) -> Simulator:
        sqs, settings = services.sqs, services.settings

        def visibility(url: str) -> int:
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"]
            return int(attributes["VisibilityTimeout"])

        jobs = Queue("WorkerFunction", settings.jobs_queue_url, queue_arns["JobsQueue"],
                     visibility(settings.jobs_queue_url), load_handler("worker", "lambda_handler"))
        deliveries = Queue("WebhookFunction", settings.deliveries_queue_url, queue_arns["DeliveriesQueue"],
                           visibility(settings.deliveries_queue_url), load_handler("webhook", "lambda_handler"))
        now = services.clock()
        return cls(services=services, jobs=jobs, deliveries=deliveries,
                   sweeper=load_handler("sweeper", "lambda_handler"), sweep_period_s=sweep_period_s,
                   timers=VirtualTimers(services), death=Death(services), started_at=now,
                   next_sweep_at=now + sweep_period_s)

    def install(self) -> Callable[[], None]:
        """The SQS timers on the clock and faithful deaths; returns their remover."""
        removers = [self.timers.install(), self.death.install()]

        def remove() -> None:
            for remover in removers:
                remover()
        return remove

    # --- one step ---------------------------------------------------------------------------------

    def receive(self, queue: Queue, limit: int = 10) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.services.sqs.receive_message(
            QueueUrl=queue.url, MaxNumberOfMessages=limit, AttributeNames=["All"]).get("Messages", [])
        for m in messages:
            self.timers.queue_of_handle[m["ReceiptHandle"]] = queue.url
        return messages

    def invoke(self, queue: Queue, messages: list[dict[str, Any]]) -> str:
        """One invocation of the queue's function on ``messages``, as Lambda makes it: "ok" or "died".

        Successes are deleted; failed records come back when their handler said, or after the queue's visibility
        timeout; a dead invocation's whole batch comes back after the visibility timeout.
        """
        self.invocations[queue.name] += 1
        sqs, now = self.services.sqs, self.services.clock()
        result = self._call(queue, messages)
        if result is None:
            self.deaths += 1
            for m in messages:
                self.timers.hold(m["ReceiptHandle"], now + queue.visibility_timeout_s)
            return "died"
        failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
        for m in messages:
            handle = m["ReceiptHandle"]
            if m["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=handle)
            elif handle not in self.timers.changed:
                self.timers.hold(handle, now + queue.visibility_timeout_s)
        return "ok"

    def _call(self, queue: Queue, messages: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The handler's answer; None if the invocation died or failed as a whole."""
        try:
            result: dict[str, Any] = queue.handler(sqs_event(messages, queue.arn), FakeLambdaContext(queue.name))
            return result
        except (ProcessKilled, Exception):
            return None
        finally:
            self.death.dead.clear()  # the next invocation is a new process

    def poll(self, queue: Queue) -> int:
        messages = self.receive(queue)
        if messages:
            self.invoke(queue, messages)
        return len(messages)

    def sweep(self) -> dict[str, Any]:
        self.sweeps += 1
        report: dict[str, Any] = self.sweeper({"source": "aws.events", "detail-type": "Scheduled Event"},
                                              FakeLambdaContext("SweeperFunction"))
        return report

    # --- until nothing is left ----------------------------------------------------------------------

    def advance_to(self, when: float) -> None:
        clock: Any = self.services.clock
        if when > clock():
            clock.advance(when - clock())
        self.timers.release_due()

    def _next_tick(self, at_or_after: float) -> float:
        tick = self.next_sweep_at
        while tick < at_or_after:
            tick += self.sweep_period_s
        return tick

    def _sweep_due(self) -> float | None:
        """When the sweeper next has something to do: the first tick at or after the soonest due job (or now,
        with dead letters to read); None when nothing is in the sweep index."""
        now = self.services.clock()
        dead = self.services.sqs.get_queue_attributes(QueueUrl=self.services.settings.jobs_dead_letter_queue_url,
                                                      AttributeNames=["ApproximateNumberOfMessages"])
        if int(dead["Attributes"]["ApproximateNumberOfMessages"]):
            return self._next_tick(now)
        items = self.services.table.scan(FilterExpression=Attr("gsi3sk").exists(),
                                         ProjectionExpression="gsi3sk", ConsistentRead=True)["Items"]
        if not items:
            return None
        return self._next_tick(max(now, min(int(str(item["gsi3sk"]).split("#", 1)[0]) for item in items)))

    def run(self, *, horizon_s: float = 4 * 86_400, max_steps: int = 2_000) -> None:
        """Deliver, retry and sweep until no message is visible, held or deferred and the sweeper has nothing
        due; bounded by ``horizon_s`` of clock time and ``max_steps`` handler invocations."""
        deadline = self.services.clock() + horizon_s
        for _ in range(max_steps):
            if self.poll(self.jobs) + self.poll(self.deliveries):
                continue
            sweep_at = self._sweep_due()
            message_at = self.timers.next_due()
            candidates = [t for t in (sweep_at, message_at) if t is not None]
            if not candidates:
                return
            when = min(candidates)  # ticks with nothing due are skipped, not run
            if when > deadline:
                raise AssertionError(f"still busy after {horizon_s} s of clock time")
            self.advance_to(when)
            if sweep_at is not None and sweep_at <= when:
                self.sweep()
                self.next_sweep_at = sweep_at + self.sweep_period_s
        raise AssertionError(f"still busy after {max_steps} steps")
