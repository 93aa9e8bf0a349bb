"""Reliability under faults: the fault suite's scenarios (tests/fault_scenarios.py), each run once in-process on moto,
the fake model and a webhook receiver on 127.0.0.1, with the real handler files, everything driven on the services'
clock (tests/simulation.py), and tabulated.

Nothing here is timed on the wall clock: "recover" is computed from the deployed settings and what the fault made
happen (the formula is printed beside it); the rig's own clock gives "simulated", the same span measured with its
settings and one phase of the sweeper's schedule, which must not exceed it.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from typing import Any

COLUMNS = {
    "jobs": "jobs submitted (one per prompt; a retried submission is still one)",
    "lost": "submitted jobs not completed or failed at the end (none stored, or stuck)",
    "doubled": "jobs stored twice for one submission, ended (completed_at written) twice, or whose prompt reached "
               "the model more often than the job had attempts",
    "calls/job": "model calls per job, counted at the provider (1.00: every job ran once)",
    "hooks/event": "2xx answers a working receiver gave per final event, counted by webhook-id at the receiver "
                   "(1.00: each event once); 'tries' = attempts in the delivery ledger per event",
    "recover": "longest time, with the deployed settings, from the fault to every job ended and its webhook "
               "answered; the formula says why",
}


@contextmanager
def quiet() -> Iterator[None]:
    """The scenarios' job logs, metrics lines and warnings are the point of the suite, not of the table."""
    from aijobs.observability import logger

    level = logger.log_level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def measure() -> dict[str, Any]:
    from tests.fault_scenarios import SCENARIOS, Deployed, run_scenario, standalone_world

    deployed = Deployed.load()
    rows = []
    with quiet(), standalone_world() as (world, model):
        for scenario in SCENARIOS:
            world.reset()
            rows.append(run_scenario(scenario, (world.new_session(), world.resources), model, deployed).summary())
    s = deployed.settings
    return {
        "rows": rows,
        "columns": COLUMNS,
        "deployed": {"job_lease_s": s.job_lease_s, "sweep_period_s": deployed.sweep_period_s,
                     "sweep_grace_s": s.sweep_grace_s, "max_attempts": s.max_attempts,
                     "retry_base_delay_s": s.retry_base_delay_s, "retry_max_delay_s": s.retry_max_delay_s,
                     "webhook_retry_schedule": list(s.webhook_retry_schedule),
                     "webhook_timeout_s": s.webhook_timeout_s, "jobs_visibility_timeout_s": deployed.jobs_visibility_s,
                     "api_timeout_s": deployed.api_timeout_s, "lambda_async_retry_s": deployed.async_retry_s},
    }


def failures(block: dict[str, Any]) -> list[str]:
    """Rows that lost or doubled a job, or broke another promise: the bench fails on any."""
    return [f"{r['family']}: {r['variant']}: lost {r['lost']}, doubled {r['doubled']}, {r['violations']}"
            for r in block["rows"] if r["lost"] or r["doubled"] or r["violations"]]


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 7200:
        return f"{value / 3600:.1f} h"
    return f"{value:g} s"


def _tries(n: float) -> str:
    return f"{n:g} {'try' if n == 1 else 'tries'}"


def _hooks(row: dict[str, Any]) -> str:
    if (works := row["webhooks_per_event"]) is not None:
        return f"{works['accepted']:.2f} ({_tries(works['tries'])})"
    if (refused := row["refused_webhooks_per_event"]) is not None:
        return f"refused ({_tries(refused['tries'])})"
    return "-"


def render(block: dict[str, Any]) -> list[str]:
    rows = block["rows"]
    d = block["deployed"]
    lines = [f"Reliability under faults: {len(rows)} scenarios of the fault suite (tests/fault_scenarios.py), "
             "in-process, on the services' clock",
             f"  deployed: lease {d['job_lease_s']} s, sweep every {d['sweep_period_s']} s, max_attempts "
             f"{d['max_attempts']}, backoff {d['retry_base_delay_s']:g} s x 2^n, webhook schedule "
             f"{','.join(map(str, d['webhook_retry_schedule']))} s"]
    header = ("family", "variant", "jobs", "lost", "doubled", "calls/job", "hooks/event", "recover", "formula")
    widths = (29, 28, 4, 4, 7, 9, 17, 8)
    table = [header] + [(r["family"], r["variant"], r["submitted"], r["lost"], r["doubled"],
                         f"{r['model_calls_per_job']:.2f}", _hooks(r), _seconds(r["recover_s"]),
                         r["recover_formula"]) for r in rows]
    for *cells, formula in table:
        text = [str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths,
                                                                                                strict=True))]
        lines.append("  " + " ".join(text) + "  " + str(formula))
    lines += [f"  {name}: {meaning}" for name, meaning in block["columns"].items()]
    return lines
