"""Infrastructure cost per million jobs from the counted requests and units (model tokens excluded)."""

from __future__ import annotations

import math
from typing import Any

# us-east-1 on-demand list prices, USD, read from the AWS pricing pages (and cross-checked against
# published summaries of them) on 2026-11-22; free tiers and volume tiers are ignored.
#   https://aws.amazon.com/api-gateway/pricing/        HTTP API, first 300 M requests a month
#   https://aws.amazon.com/lambda/pricing/             arm64 duration and requests
#   https://aws.amazon.com/dynamodb/pricing/on-demand/ on-demand WRU / RRU (after the Nov 2024 cut)
#   https://aws.amazon.com/sqs/pricing/                standard queue, each 64 KB chunk of a payload a request
PRICES_AS_OF = "2026-11-22"
PRICES = {
    "http_api_per_million_requests": 1.00,
    "lambda_arm64_per_gb_s": 0.0000133334,
    "lambda_per_million_requests": 0.20,
    "dynamodb_per_million_wru": 0.625,
    "dynamodb_per_million_rru": 0.125,
    "sqs_per_million_requests": 0.40,
}
MODEL_S = 8.0  # issue 16's model: each job's call takes 8 s
MILLION = 1_000_000


def template_figures() -> dict[str, Any]:
    """Each function's MemorySize (GB) and the batch sizes of the worker's and the webhook's event sources."""
    from aijobs.local.template import load_template

    resources = load_template()["Resources"]

    def props(name: str) -> dict[str, Any]:
        return dict(resources[name]["Properties"])

    def batch(name: str, event: str) -> int:
        return int(props(name)["Events"][event]["Properties"]["BatchSize"])

    return {"memory_gb": {name: int(props(f"{name.capitalize()}Function")["MemorySize"]) / 1024
                          for name in ("api", "worker", "webhook")},
            "worker_batch": batch("WorkerFunction", "Jobs"), "webhook_batch": batch("WebhookFunction", "Deliveries")}


def _usd_per_job_second(gb: float) -> float:
    return gb * PRICES["lambda_arm64_per_gb_s"] * MILLION


def _seconds(ms: float) -> float:
    return math.ceil(ms) / 1000  # Lambda bills duration rounded up to the millisecond


def per_million_jobs(*, totals: dict[str, Any], api_ms: list[float], worker_ms: float, webhook_ms: float,
                     batch_overhead_s: float) -> dict[str, Any]:
    """USD per million jobs by line item: with the worker's and webhook's batches full (the load the figure is for),
    and for a job alone in its invocations (a quiet hour).

    ``worker_ms``: the worker's warm handler time for one job against the instant fake model; ``batch_overhead_s``:
    what a full batch's invocation takes beyond its model wait (measured with a slow fake model)."""
    t = template_figures()
    memory, b_worker, b_webhook = t["memory_gb"], t["worker_batch"], t["webhook_batch"]
    sqs = {label: row["sqs_billed"] for label, row in totals["by_operation"].items() if label.startswith("sqs.")}
    sends = sum(n for label, n in sqs.items() if label.startswith("sqs.Send"))
    polls = sum(sqs.values()) - sends  # the event source mappings' receives and deletes: one of each a batch

    def lines(worker_batch: int, webhook_batch: int) -> dict[str, float]:
        return {
            "http_api_requests": len(api_ms) * PRICES["http_api_per_million_requests"],
            "lambda_requests": (len(api_ms) + 1 / worker_batch + 1 / webhook_batch)
            * PRICES["lambda_per_million_requests"],
            "lambda_api_duration": sum(_seconds(ms) for ms in api_ms) * _usd_per_job_second(memory["api"]),
            # the invocation waits on its jobs' model calls at once: one wait shared by the batch
            "lambda_worker_duration": (MODEL_S + (batch_overhead_s if worker_batch > 1 else _seconds(worker_ms)))
            / worker_batch * _usd_per_job_second(memory["worker"]),
            "lambda_webhook_duration": _seconds(webhook_ms) * _usd_per_job_second(memory["webhook"]),
            "dynamodb_writes": totals["wru"] * PRICES["dynamodb_per_million_wru"],
            "dynamodb_reads": totals["rru"] * PRICES["dynamodb_per_million_rru"],
            # receives and deletes per batch: the jobs' and the deliveries' event sources batch alike
            "sqs_requests": (sends + polls / worker_batch) * PRICES["sqs_per_million_requests"],
        }

    full, alone = lines(b_worker, b_webhook), lines(1, 1)
    return {
        "usd_per_million_jobs": round(sum(full.values()), 2),
        "usd_per_million_jobs_alone": round(sum(alone.values()), 2),
        "lines": {name: round(value, 3) for name, value in full.items()},
        "lines_alone": {name: round(value, 3) for name, value in alone.items()},
        "model_s": MODEL_S,
        "template": t,
        "prices": PRICES,
        "prices_as_of": PRICES_AS_OF,
        "assumptions": assumptions(api_calls=len(api_ms), t=t),
    }


def assumptions(*, api_calls: int, t: dict[str, Any]) -> list[str]:
    m = t["memory_gb"]
    return [
        f"us-east-1 on-demand list prices as of {PRICES_AS_OF}, arm64; no free tier, no volume discounts",
        f"a job = one submit with Idempotency-Key and a callback_url, and one GET once it has ended: {api_calls} "
        "HTTP API requests and ApiFunction invocations; the worker's path; its one webhook through the deliveries "
        "queue and WebhookFunction; limits on (the tenant's default limits)",
        "AWS requests and DynamoDB units are the ones counted with botocore hooks for that lifecycle; the API-key "
        "lookup (once per key per warm API container per 60 s) is left out",
        f"the model answers in {MODEL_S:g} s; Lambda bills the worker for the wait",
        f"under load (the figure): the event sources fill their batches, {t['worker_batch']} jobs a worker "
        f"invocation (one model wait shared by the batch, plus the batch's own time measured with a slow fake "
        f"model) and {t['webhook_batch']} deliveries a webhook invocation, one ReceiveMessage and one "
        "DeleteMessageBatch a batch; alone (a quiet hour): every invocation and receive carries one job",
        f"Lambda memory from template.yaml: api {m['api'] * 1024:g} MB, worker {m['worker'] * 1024:g} MB, webhook "
        f"{m['webhook'] * 1024:g} MB; durations are warm in-process times against moto (real DynamoDB and SQS round "
        "trips add a few ms each)",
        "not counted: model tokens, storage, PITR backups, CloudWatch Logs, data transfer, Secrets Manager, "
        "empty long polls of idle queues",
    ]
