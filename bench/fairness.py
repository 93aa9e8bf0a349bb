"""Concurrency limits: what a concurrency slot costs per job, and a small tenant's wait behind a large one's backlog.

Cost: one job's lifecycle (bench/lifecycle.py, every AWS request recorded) with the worker keeping concurrency
limits, against the same lifecycle with the limits off; the difference is the slot's cost.

Fairness: the worker handler polled by WORKER_INSTANCES threads (as concurrent Lambda instances would be), moto and
the fake model in-process. Tenant B submits SMALL jobs on an idle stack, then again while tenant A holds a backlog
of BACKLOG jobs of A_TOKENS output tokens each (A's limit: A_LIMIT running at once), once the backlog has gone
through the worker and parked (its messages are gone from the queue). A job's wait is from its submission to its
claim. The ratio is B's median wait behind A's backlog over B's median wait on the idle stack.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import warnings
from collections.abc import Callable
from contextlib import suppress
from typing import Any

# The figure: a backlog of 1,000. Parked jobs cost the worker one look each, then nothing while they wait, so
# the backlog's size adds to the settle phase but not to B's wait; that phase is most of this bench's time (each look
# is five DynamoDB calls to moto, in this one process, beside A's running model streams): 1.5 to 2 minutes here.
BACKLOG = 1000
A_TOKENS = 2000
A_TOKEN_MS = 2  # 2,000 tokens: about 4 s of model time a job
A_LIMIT = 4
SMALL = 10
WORKER_INSTANCES = 8  # above A_LIMIT: each running job holds its instance until it ends (see README)
SETTLE_TIMEOUT_S = 120  # after it is submitted, A's backlog goes through the worker once (and parks)
STEADY_UNPARKED = 20  # ...until fewer of A's jobs than this are neither parked nor started (their messages in the
# queue or in a batch being handled; a few are released ones on their way)
SMALL_TIMEOUT_S = 120


def _limits_cost() -> dict[str, Any]:
    from bench.lifecycle import lifecycle, local_stack
    from bench.recorder import summarize

    with local_stack() as stack:
        key = "aj_bench_limits"
        stack.services.tenants.add_api_key("bench-limits", key)
        lifecycle(stack, api_key=key, idempotency_key=None, record=False)  # warm: imports, clients, the limits
        on = summarize(lifecycle(stack, api_key=key, idempotency_key=None).calls)
        slots = stack.services.worker.slots
        stack.services.worker.slots = None
        try:
            off = summarize(lifecycle(stack, api_key=key, idempotency_key=None).calls)
        finally:
            stack.services.worker.slots = slots
    slot_rows = {label: row for label, row in on["by_operation"].items() if label not in off["by_operation"]
                 or row["requests"] != off["by_operation"][label]["requests"]}
    return {
        "with_limits": {k: on[k] for k in ("aws_requests", "dynamodb_requests", "wru", "rru")},
        "without_limits": {k: off[k] for k in ("aws_requests", "dynamodb_requests", "wru", "rru")},
        "extra_requests_per_job": on["aws_requests"] - off["aws_requests"],
        "extra_wru_per_job": on["wru"] - off["wru"],
        "extra_rru_per_job": round(on["rru"] - off["rru"], 2),
        "changed_operations": {label: {k: row[k] for k in ("requests", "wru", "rru")}
                               for label, row in slot_rows.items()},
        "note": "a job that runs (not parked): the job's state read, the tenant's slots read, the slot taken "
                "(1 UpdateItem) and given back (1 UpdateItem, its answer the room left), and the giver's look for "
                "parked jobs to release (1 Query, consistent: 1 RRU); the tenant's limits are read once per "
                "key-cache period per worker. A parked job adds: its wait item (1 UpdateItem), its sweep entry "
                "moved to the backstop (1 UpdateItem of the job item), the slots read again (consistent GetItem); "
                "its release: 1 DeleteItem, its state read (consistent GetItem), 1 SendMessage, and one more "
                "receive and look",
    }


class _Claims:
    """When each job was claimed (monotonic s), and in what order, by wrapping the store's claim."""

    def __init__(self, store: Any) -> None:
        self.at: dict[str, float] = {}
        self.order: list[str] = []
        self._lock = threading.Lock()
        self._store = store
        self._real: Callable[..., Any] = store.claim_job

    def install(self) -> None:
        def claim(job_id: str, *, lease_s: int) -> Any:
            result = self._real(job_id, lease_s=lease_s)
            if result.job is not None:
                with self._lock:
                    self.at[job_id] = time.monotonic()
                    self.order.append(job_id)
            return result
        self._store.claim_job = claim

    def remove(self) -> None:
        del self._store.claim_job


def _small_waits(stack: Any, claims: _Claims, *, tag: str) -> tuple[list[float], list[str]]:
    from aijobs.models.jobs import JobRequest

    submitted: dict[str, float] = {}
    for i in range(SMALL):
        job = stack.services.jobs.submit_job(tenant="bench-b", request=JobRequest(input=f"small {tag} {i}"))
        submitted[job.id] = time.monotonic()
    deadline = time.monotonic() + SMALL_TIMEOUT_S
    while not all(job_id in claims.at for job_id in submitted) and time.monotonic() < deadline:
        time.sleep(0.05)
    # A job not started by the deadline counts as waiting that long: a lower bound, reported as such.
    return [claims.at.get(j, deadline) - t for j, t in submitted.items()], list(submitted)


def _visible(stack: Any) -> int:
    attributes = stack.esm_sqs.get_queue_attributes(QueueUrl=stack.queue_url,
                                                    AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def _parked(services: Any, tenant: str) -> int:
    from boto3.dynamodb.conditions import Key

    from aijobs.dynamo import WAITING_PREFIX, tenant_partition

    condition = Key("pk").eq(tenant_partition(tenant)) & Key("sk").begins_with(WAITING_PREFIX)
    return int(services.table.query(KeyConditionExpression=condition, Select="COUNT")["Count"])


def _fairness() -> dict[str, Any]:
    from aijobs.local.pollers import QueuePoller
    from aijobs.models.jobs import Job, JobStatus
    from aijobs.models.tenants import TenantLimits
    from bench.lifecycle import local_stack

    with local_stack() as stack:
        services = stack.services
        # Only the concurrency limit holds A back: the stack's default token rate (2,000,000 a minute, reserved at
        # admission) would refuse half of a burst of 1,000, and the bench would measure a smaller backlog.
        services.tenants.set_limits("bench-a", TenantLimits(concurrent_jobs=A_LIMIT, tokens_per_minute=1_000_000_000,
                                                            daily_cost_usd=1_000_000))
        services.worker  # noqa: B018 (built before the pollers' threads race to build it)
        claims = _Claims(services.store)
        claims.install()
        # The worker threads' metrics (EMF lines on stdout, as on Lambda) would drown the bench's table.
        metrics_were = os.environ.get("POWERTOOLS_METRICS_DISABLED")
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
        warnings.filterwarnings("ignore", "No application metrics to publish")
        poller = QueuePoller(name="WorkerFunction", sqs=stack.esm_sqs, queue_url=stack.queue_url,
                             queue_arn=stack.queue_arn, handler=stack.worker)
        stop, paused = threading.Event(), threading.Event()

        def instance() -> None:  # one worker instance, polling as the event source mapping does
            while not stop.is_set():
                if paused.is_set():
                    time.sleep(0.05)
                    continue
                with suppress(Exception):
                    poller.poll_once(wait_s=1)

        threads = [threading.Thread(target=instance, daemon=True) for _ in range(WORKER_INSTANCES)]
        for thread in threads:
            thread.start()
        try:
            idle, _ = _small_waits(stack, claims, tag="idle")
            started = time.monotonic()
            prompt = f"backlog [[tokens={A_TOKENS}]] [[token_ms={A_TOKEN_MS}]]"
            backlog: list[str] = []
            # A's burst arrives at once: the workers are paused while it is submitted (in this one process they
            # would otherwise share its time with the submission, and the burst would trickle in for a minute).
            paused.set()
            for _ in range(0, BACKLOG, 100):
                backlog += [r.id for r in services.jobs.submit_jobs(
                    tenant="bench-a", items=[{"input": prompt}] * min(100, BACKLOG - len(backlog)))
                    if isinstance(r, Job)]
            paused.clear()
            submit_s = time.monotonic() - started
            a_ids, submitted = set(backlog), time.monotonic()
            while (len(backlog) - _parked(services, "bench-a") - sum(j in a_ids for j in list(claims.order))
                   >= STEADY_UNPARKED and time.monotonic() - submitted < SETTLE_TIMEOUT_S):
                time.sleep(0.5)
            settle_s = time.monotonic() - started
            parked = _parked(services, "bench-a")
            visible = _visible(stack)
            before = len(claims.order)
            behind, small_ids = _small_waits(stack, claims, tag="behind")
            unstarted = sum(j not in claims.at for j in small_ids)
            last_small = max((claims.order.index(j) for j in small_ids if j in claims.at), default=before)
            a_started_meanwhile = sum(1 for j in claims.order[before:last_small] if j not in small_ids)
            states = services.store.get_states(backlog)
            queued = sum(s.status is JobStatus.queued for s in states.values())
        finally:
            stop.set()
            # Every thread is done before moto goes (a late call would go to the real AWS endpoint): running jobs
            # are cancelled until none is left, which their worker sees within half a second.
            while any(thread.is_alive() for thread in threads):
                for item in services.table.scan(ProjectionExpression="id, tenant, #s",
                                                ExpressionAttributeNames={"#s": "status"})["Items"]:
                    if item.get("status") == JobStatus.in_progress.value:
                        with suppress(Exception):
                            services.jobs.cancel_job(tenant=str(item["tenant"]), job_id=str(item["id"]))
                for thread in threads:
                    thread.join(timeout=0.5)
            claims.remove()
            if metrics_were is None:
                os.environ.pop("POWERTOOLS_METRICS_DISABLED", None)
            else:
                os.environ["POWERTOOLS_METRICS_DISABLED"] = metrics_were
    idle_ms = statistics.median(idle) * 1000
    behind_ms = statistics.median(behind) * 1000
    return {
        "backlog_jobs": len(backlog), "backlog_output_tokens_each": A_TOKENS, "backlog_limit": A_LIMIT,
        "small_jobs": SMALL, "worker_instances": WORKER_INSTANCES,
        "small_median_wait_idle_ms": round(idle_ms, 1),
        "small_median_wait_behind_backlog_ms": round(behind_ms, 1),
        "ratio": round(behind_ms / idle_ms, 2) if idle_ms else None,
        "backlog_submit_s": round(submit_s, 1), "backlog_settle_s": round(settle_s, 1),
        "backlog_parked_when_small_ones_submitted": parked,
        "messages_visible_when_small_ones_submitted": visible,
        "backlog_jobs_started_while_small_ones_waited": a_started_meanwhile,
        "backlog_still_queued_after": queued,
        "small_jobs_not_started_within_s": {"jobs": unstarted, "s": SMALL_TIMEOUT_S},
    }


def measure() -> dict[str, Any]:
    return {"cost": _limits_cost(), "fairness": _fairness()}


def render(r: dict[str, Any]) -> list[str]:
    c, f = r["cost"], r["fairness"]
    lines = ["Concurrency limits: a slot's cost per job (lifecycle with limits on, against off)",
             f"  +{c['extra_requests_per_job']} AWS requests, +{c['extra_wru_per_job']} WRU, "
             f"+{c['extra_rru_per_job']:g} RRU per job "
             f"({c['with_limits']['wru']} WRU with, {c['without_limits']['wru']} without)"]
    for label, row in c["changed_operations"].items():
        lines.append(f"    {label:<36} {row['requests']} calls, {row['wru']} WRU, {row['rru']:g} RRU (with limits)")
    lines += [f"Fairness: B's {f['small_jobs']} small jobs behind A's backlog of {f['backlog_jobs']} x "
              f"{f['backlog_output_tokens_each']} tokens (A limited to {f['backlog_limit']} running), "
              f"{f['worker_instances']} worker instances",
              f"  B's median wait: idle {f['small_median_wait_idle_ms']:.0f} ms, behind the backlog "
              f"{f['small_median_wait_behind_backlog_ms']:.0f} ms: ratio {f['ratio']} (target at most 2)",
              f"  A jobs started meanwhile {f['backlog_jobs_started_while_small_ones_waited']}, A still queued "
              f"{f['backlog_still_queued_after']}; backlog submitted in {f['backlog_submit_s']} s, "
              f"went through the worker once in {f['backlog_settle_s']} s "
              f"({f['backlog_parked_when_small_ones_submitted']} parked then, "
              f"{f['messages_visible_when_small_ones_submitted']} messages visible)"]
    if late := f["small_jobs_not_started_within_s"]["jobs"]:
        lines.append(f"  {late} of B's jobs had not started after {f['small_jobs_not_started_within_s']['s']} s "
                     "(counted as that long: the ratio is a lower bound)")
    return lines


if __name__ == "__main__":
    import json

    os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
    result = measure()
    print(json.dumps(result, indent=2))
    print("\n".join(render(result)))
