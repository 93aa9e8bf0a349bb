"""Webhook isolation: another tenant's webhook delay while one tenant's receiver is a tarpit.

In-process, as the local stack runs it: moto provisioned from template.yaml, the real WebhookFunction handler fed
by ``QueuePoller`` threads (as many as ``aijobs.local.stack`` runs: the template's WebhookMaximumConcurrency, in
batches of its BatchSize), the webhook settings the template gives WebhookFunction (timeouts, per-host cap) and
the local stack's retry schedule, receivers on 127.0.0.1. Tenant A's 60 jobs end with a callback to a receiver that
accepts the connection and never answers; once their attempts hang there, tenant B's jobs end one at a time with a
receiver that answers 200 at once. B's delay runs from its job's final event (the terminal write, then the enqueue,
as the worker makes them) to its receiver getting the request; these are wall-clock seconds, printed, never
asserted on.

``python -m bench.webhooks`` runs this bench alone.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

A_JOBS = 60
SAMPLES = 5
SPACING_S = 1.5  # between B's jobs, so that they land at different points of A's attempts and deferrals
GOAL_S = 2.0


@dataclass
class Rig:
    services: Any
    tarpit: Any
    receiver: Any
    consumers: int
    batch_size: int


@contextmanager
def _rig(*, per_host: int | None) -> Iterator[Rig]:
    """The deliveries queue served as the local stack serves it; ``per_host`` overrides the template's cap."""
    from aijobs.local.pollers import QueuePoller
    from aijobs.local.stack import LOCAL_WEBHOOK_DEFAULTS, load_handler, poller_concurrency
    from aijobs.local.template import function_environment, sqs_sources
    from aijobs.services import Services, set_services
    from tests.fault_scenarios import standalone_world
    from tests.integration.conftest import KEY_A, KEY_B, TENANT_A, TENANT_B, make_settings
    from tests.receiver import Receiver, Tarpit

    with standalone_world() as (world, model):
        world.reset()
        deployed = {name.removeprefix("AIJOBS_").lower(): value
                    for name, value in function_environment(world.template, world.resources, "WebhookFunction").items()
                    if name.startswith("AIJOBS_WEBHOOK_")}
        local = {name.removeprefix("AIJOBS_").lower(): value for name, value in LOCAL_WEBHOOK_DEFAULTS.items()}
        overrides = {} if per_host is None else {"webhook_max_in_flight_per_host": per_host}
        settings = make_settings(world.resources, model.url, **{**deployed, **local, **overrides})
        services = Services(settings=settings, session=world.new_session())
        services.tenants.add_api_key(TENANT_A, KEY_A)
        services.tenants.add_api_key(TENANT_B, KEY_B)
        set_services(services)
        (source,) = [s for s in sqs_sources(world.template) if s.function == "WebhookFunction"]
        consumers = poller_concurrency(source, {})
        poller = QueuePoller(name=source.function, sqs=services.sqs, queue_url=world.resources.refs[source.queue],
                             queue_arn=world.resources.arns[source.queue],
                             handler=load_handler(source.code_dir, source.handler), concurrency=consumers,
                             batch_size=source.batch_size)
        tarpit, receiver = Tarpit().start(), Receiver().start()
        poller.start()
        try:
            yield Rig(services=services, tarpit=tarpit, receiver=receiver, consumers=consumers,
                      batch_size=source.batch_size)
        finally:
            tarpit.stop()  # the attempts hanging there end at once (connection closed), and the pollers with them
            poller.stop()
            receiver.stop()
            set_services(None)


def _end_job(services: Any, tenant: str, url: str) -> float:
    """A job ended as its worker ends it (claim, terminal write, enqueue); when its final event was made."""
    from aijobs.models.jobs import JobRequest, Usage
    from aijobs.pricing import Price

    job_id = services.jobs.submit_job(tenant=tenant, request=JobRequest(input="bench", callback_url=url)).id
    claimed = services.store.claim_job(job_id, lease_s=60).job
    final_event_at = time.monotonic()
    services.store.complete_job(claimed, output_text="done", usage=Usage(), price=Price(Decimal(0), True))
    services.outbox.enqueue_final_event(job_id)
    return final_event_at


def _wait(probe: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench: {what} within {timeout_s} s")
        time.sleep(0.01)


def _run(*, per_host: int | None, samples: int) -> dict[str, Any]:
    from tests.integration.conftest import TENANT_A, TENANT_B

    with _rig(per_host=per_host) as rig:
        svc = rig.services
        for _ in range(A_JOBS):
            _end_job(svc, TENANT_A, f"{rig.tarpit.url}/hook")
        cap = svc.settings.webhook_max_in_flight_per_host
        hanging = min(cap, rig.batch_size)  # at least a batch of attempts, or the cap, hangs at its receiver
        _wait(lambda: rig.tarpit.open_now >= hanging, 60, "tenant A's attempts did not reach its receiver")
        delays = []
        for i in range(samples):
            final_event_at = _end_job(svc, TENANT_B, f"{rig.receiver.url}/hook")
            _wait(lambda n=i + 1: len(rig.receiver.received) >= n, 120, "tenant B's webhook did not arrive")
            delays.append(rig.receiver.received[i].at - final_event_at)
            time.sleep(SPACING_S)
        s = svc.settings
        return {
            "tenant_b_delay_s": {"median": round(statistics.median(delays), 3), "max": round(max(delays), 3),
                                 "samples": [round(d, 3) for d in delays]},
            "a_attempts_made": rig.tarpit.accepted,
            "a_most_in_flight": rig.tarpit.max_open,
            "per_host_cap": cap,
            "consumers": rig.consumers,
            "batch_size": rig.batch_size,
            "attempt_timeouts_s": {"connect": s.webhook_connect_timeout_s, "read": s.webhook_read_timeout_s,
                                   "total": s.webhook_timeout_s},
        }


def measure(*, samples: int = SAMPLES) -> dict[str, Any]:
    """B's delay with the deployed cap, and (for comparison) with the cap lifted, the timeouts unchanged."""
    from bench.reliability import quiet

    with quiet():
        capped = _run(per_host=None, samples=samples)
        uncapped = _run(per_host=100, samples=3)  # the most the setting allows: every batch in flight
    return {
        **capped,
        "goal_s": GOAL_S,
        "a_jobs": A_JOBS,
        "without_cap": {k: uncapped[k] for k in ("tenant_b_delay_s", "a_attempts_made", "a_most_in_flight")},
        "note": "seconds from B's job's final event to its receiver getting the request (wall clock, in-process "
                "on moto); A's receiver accepts and never answers",
    }


def render(r: dict[str, Any]) -> list[str]:
    b, t, free = r["tenant_b_delay_s"], r["attempt_timeouts_s"], r["without_cap"]
    return [
        f"Webhook isolation: tenant B's webhook with {r['a_jobs']} callbacks of tenant A to a receiver that never "
        "answers (in-process, as the local stack runs it)",
        f"  {r['consumers']} consumers x batches of {r['batch_size']}, per-host cap {r['per_host_cap']}, attempt "
        f"{t['connect']:g} s connect / {t['read']:g} s idle read / {t['total']:g} s in all",
        f"  B's delay, final event to its receiver: median {b['median']:.2f} s, max {b['max']:.2f} s over "
        f"{len(b['samples'])} jobs (goal <= {r['goal_s']:g} s); A: {r['a_attempts_made']} attempts, at most "
        f"{r['a_most_in_flight']} in flight at its receiver",
        f"  without the per-host cap (same timeouts): median {free['tenant_b_delay_s']['median']:.2f} s, max "
        f"{free['tenant_b_delay_s']['max']:.2f} s; A: {free['a_attempts_made']} attempts, at most "
        f"{free['a_most_in_flight']} in flight",
    ]


def main() -> None:
    import os

    os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
    print("\n".join(render(measure())))


if __name__ == "__main__":
    main()
