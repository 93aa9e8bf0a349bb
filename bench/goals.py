"""Every figure that has a goal, against it: one line each in the table, and ``goals`` in bench/latest.json.

The goals are issue 16's (cold start, cost, throughput, streams, the worker's batch) and the earlier issues' (waits,
lists, fairness, webhooks, cancel). A goal whose figure the bench does not measure yet says so: it is not met.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Goal:
    name: str  # its key in latest.json's "goals"
    what: str
    figure: Callable[[dict[str, Any]], float | None]  # from latest.json's result; None: not measured
    limit: float
    at_most: bool = True  # the figure must be at most the limit (else at least)
    unit: str = ""


def _function(name: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda r: r["functions"][name]["import_ratio_vs_boto3"] if name in r["functions"] else None


OTHER_FUNCTIONS = ("webhook", "scheduler", "sweeper", "stream")

GOALS = [
    Goal("api_import_ratio", "API handler import vs `import boto3`", _function("api"), 2.0, unit="x"),
    Goal("worker_import_ratio", "worker handler import vs `import boto3`", _function("worker"), 2.0, unit="x"),
    *(Goal(f"{name}_import_ratio", f"{name} handler import vs `import boto3`", _function(name), 1.5, unit="x")
      for name in OTHER_FUNCTIONS),
    Goal("usd_per_million_jobs", "infrastructure cost per million jobs", lambda r: r["usd_per_million_jobs"], 8.0,
         unit=" USD"),
    Goal("local_throughput_ratio", "local stack's jobs/s vs the emulator's ceiling",
         lambda r: r.get("throughput", {}).get("ratio"), 0.5, at_most=False, unit="x"),
    Goal("stream_delta_p50_ms", "stream: token to client, p50", lambda r: r["stream_delta_p50_ms"], 250, unit=" ms"),
    Goal("stream_wru_per_s", "stream: table writes a second of a streamed job", lambda r: r["stream_wru_per_s"], 4.0),
    Goal("worker_batch10_ratio", "worker: a batch of 10 vs one job", lambda r: r["worker_batch10_ratio"], 1.1,
         unit="x"),
    Goal("streams_100_longest_stall_s", "100 concurrent streamed jobs: the longest stall",
         lambda r: r.get("streams_100", {}).get("longest_stall_s"), 2.0, unit=" s"),
    Goal("waiters_ratio", "another tenant's GET while 60 requests wait", lambda r: r["waiters"]["ratio"], 1.5,
         unit="x"),
    Goal("lists_first_page_ms", "a filtered list's first page over 10,000 jobs",
         lambda r: r["lists"]["first_page"]["ms_median"], 500, unit=" ms"),
    Goal("fairness_ratio", "a small tenant's wait behind a backlog", lambda r: r["fairness_small_tenant_wait_ratio"],
         2.0, unit="x"),
    Goal("webhook_isolation_s", "a tenant's webhook delay while another's receiver hangs",
         lambda r: r["webhook_isolation"]["tenant_b_delay_s"]["median"], 2.0, unit=" s"),
    Goal("cancel_to_abort_ms", "cancel to the model's stream closed", lambda r: r["cancel_to_abort_ms"], 1000,
         unit=" ms"),
]


def evaluate(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{goal: {value, limit, at_most, met}}; a figure not measured is null and not met."""
    out: dict[str, dict[str, Any]] = {}
    for goal in GOALS:
        value = goal.figure(result)
        met = value is not None and (value <= goal.limit if goal.at_most else value >= goal.limit)
        out[goal.name] = {"value": value, "limit": goal.limit, "at_most": goal.at_most, "met": met}
    return out


def render(goals: dict[str, dict[str, Any]]) -> list[str]:
    met = sum(g["met"] for g in goals.values())
    lines = [f"Goals: {met} of {len(goals)} met"]
    for goal in GOALS:
        g = goals[goal.name]
        value = "not measured yet" if g["value"] is None else f"{g['value']:g}{goal.unit}"
        bound = f"{'<=' if goal.at_most else '>='} {goal.limit:g}{goal.unit}"
        lines.append(f"  {'met    ' if g['met'] else 'NOT MET'}  {goal.what}: {value} (goal {bound})")
    return lines
