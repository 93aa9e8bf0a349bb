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
MEMORY_GB = 512 / 1024  # ApiFunction and WorkerFunction MemorySize in template.yaml
MODEL_WAIT_S = 2.0  # an assumed model latency, to show what waiting on the model costs
MILLION = 1_000_000


def _gb_s(ms: float) -> float:
    return math.ceil(ms) / 1000 * MEMORY_GB  # Lambda bills duration rounded up to the millisecond


def per_million_jobs(*, totals: dict[str, Any], api_ms: list[float], worker_ms: float,
                     batch_ratio: float, batch: int) -> dict[str, Any]:
    """USD per million jobs by line item, the total without model wait, and what model wait adds."""
    api_calls = len(api_ms)
    lines = {
        "http_api_requests": api_calls * PRICES["http_api_per_million_requests"],
        "lambda_requests": (api_calls + 1) * PRICES["lambda_per_million_requests"],
        "lambda_api_duration": sum(_gb_s(ms) for ms in api_ms) * PRICES["lambda_arm64_per_gb_s"] * MILLION,
        "lambda_worker_duration": _gb_s(worker_ms) * PRICES["lambda_arm64_per_gb_s"] * MILLION,
        "dynamodb_writes": totals["wru"] * PRICES["dynamodb_per_million_wru"],
        "dynamodb_reads": totals["rru"] * PRICES["dynamodb_per_million_rru"],
        "sqs_requests": totals["sqs_billed_requests"] * PRICES["sqs_per_million_requests"],
    }
    per_wait_second = MEMORY_GB * PRICES["lambda_arm64_per_gb_s"] * MILLION
    total = sum(lines.values())
    return {
        "usd_per_million_jobs": round(total, 2),
        "lines": {name: round(value, 3) for name, value in lines.items()},
        "model_wait_usd_per_million_jobs_per_second": round(per_wait_second, 2),
        "model_wait_s": MODEL_WAIT_S,
        # a batch waits on its jobs' model calls concurrently: batch_ratio x one job's wait, shared by `batch` jobs
        "usd_per_million_jobs_with_model_wait": {
            "batch_1": round(total + MODEL_WAIT_S * per_wait_second, 2),
            f"batch_{batch}": round(total + MODEL_WAIT_S * batch_ratio / batch * per_wait_second, 2)},
        "prices": PRICES,
        "prices_as_of": PRICES_AS_OF,
        "assumptions": assumptions(api_calls=api_calls, batch=batch),
    }


def assumptions(*, api_calls: int, batch: int) -> list[str]:
    return [
        f"us-east-1 on-demand list prices as of {PRICES_AS_OF}; no free tier, no volume discounts",
        f"a job = submit + {api_calls - 1} GETs through the HTTP API ({api_calls} API Gateway requests and "
        f"{api_calls} ApiFunction invocations) + 1 WorkerFunction invocation carrying it alone (batch of 1)",
        "AWS requests and DynamoDB units are the ones counted for that lifecycle, submit with Idempotency-Key; "
        "the API-key lookup (once per key per warm API container per 60 s) is left out",
        "SQS: SendMessage, plus the event source mapping's ReceiveMessage and DeleteMessageBatch for a batch "
        "of 1; empty long-poll receives of an idle queue are not counted",
        "Lambda: 512 MB arm64; API duration = warm in-process ms per request measured against moto (real "
        "DynamoDB/SQS round trips add a few ms each); worker duration = its warm handler ms against the "
        "instant fake model, i.e. without model wait",
        f"model wait is excluded from usd_per_million_jobs: it dominates, each second of model latency adds "
        f"512 MB x 1 s to a batch of 1; shown separately for {MODEL_WAIT_S:g} s at batch 1 and batch {batch}",
        "not counted: model tokens, storage, PITR backups, CloudWatch Logs, data transfer, Secrets Manager",
    ]
