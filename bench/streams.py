"""Live jobs through the local stack (moto in-process, the fake model, the API under uvicorn on 127.0.0.1):

- stream_delta_p50_ms / _p95_ms: from the fake model emitting a token to the SSE client reading it (the worker's
  flush, DynamoDB, the stream's poll, the HTTP response), over every token of a streamed job but its first;
- stream_wru_per_s: the DynamoDB write units streaming adds, a second of model call: the worker's units (counted
  with the botocore hooks) for the streamed job, less those of the same answer made at once (claim, completion),
  over the call's time as the worker timed it (the job's duration_ms); stream_rru_per_s: the read units of one
  open stream meanwhile;
- cancel_to_abort_ms: from DELETE /v1/jobs/{id} to the fake model seeing its stream closed. The worker reads its
  jobs' statuses at instants CANCEL_CHECK_S apart, so a cancel waits for the next one: the runs cancel at offsets
  spread over one period after the job's output first shows (itself written at a check instant), so that the
  median is a cancel's at an unknown moment, not at one phase of the checks.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from typing import Any

import httpx

TOKENS = 120
TOKEN_MS = 40  # about 25 tokens a second, a fast model's pace
CANCEL_RUNS = 5


class _TokenClock:
    """The fake model's sleep, recording when each wait between tokens ends: the moment the next token goes out."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    async def __call__(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.ends.append(time.monotonic())


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def measure() -> dict[str, Any]:
    from aijobs.api import create_app
    from aijobs.local.server_process import UvicornThread
    from aijobs.local.stack import free_port
    from bench.lifecycle import local_stack

    clock = _TokenClock()
    with local_stack(model_sleep=clock) as stack:
        key = stack.services.tenants.add_api_key("bench-streams")
        server = UvicornThread(create_app(), free_port())
        server.start()
        try:
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
                at_once = _run(stack, api, f"at once [[tokens={TOKENS}]]")
                streamed = _stream_one(stack, api, server.url, key, clock, at_once)
                cancels = [_cancel_one(stack, api, run) for run in range(CANCEL_RUNS)]
        finally:
            server.stop()
    return {**streamed, "cancel_to_abort_ms": round(statistics.median(cancels), 1),
            "cancel_to_abort_ms_max": round(max(cancels), 1), "cancel_runs": CANCEL_RUNS,
            "tokens": TOKENS, "token_ms": TOKEN_MS}


def _run(stack: Any, api: httpx.Client, prompt: str, *, before: Any = None) -> dict[str, Any]:
    """Submit a `stream: true` job and run the worker on it (``before()`` once its message is received): the
    worker's AWS requests, summarized."""
    from bench.lifecycle import receive, run_worker_only
    from bench.recorder import summarize

    api.post("/v1/jobs", json={"input": prompt, "stream": True}).raise_for_status()
    messages = receive(stack, 1)
    if before is not None:
        before()
    stack.recorder.take()
    stack.recorder.phase = "worker"
    run_worker_only(stack, messages)
    stack.recorder.phase = None
    calls = stack.recorder.take()
    stack.esm_sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
    return dict(summarize(calls))


def _stream_one(stack: Any, api: httpx.Client, url: str, key: str, clock: _TokenClock,
                at_once: dict[str, Any]) -> dict[str, Any]:
    from tests.helpers import read_sse

    deltas: list[tuple[float, str]] = []
    job_id = ""

    def read() -> None:
        with (httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client,
              client.stream("GET", f"/v1/jobs/{job_id}/stream") as answer):
            for event in read_sse(answer.iter_lines()):
                if event.event == "delta":
                    deltas.append((time.monotonic(), event.json()["text"]))

    reader = threading.Thread(target=read)

    def start_reading() -> None:
        nonlocal job_id
        job_id = api.get("/v1/jobs", params={"limit": 1}).json()["data"][0]["id"]
        clock.ends.clear()
        reader.start()

    totals = _run(stack, api, f"stream [[tokens={TOKENS}]] [[token_ms={TOKEN_MS}]]", before=start_reading)
    reader.join(timeout=60)
    # Token i (i >= 1) goes out when the model's i-th wait ends; each delta holds the tokens after the last one's.
    emitted, latencies, seen = clock.ends, [], 0
    for received, text in deltas:
        count = len(text.split())
        for token in range(seen, seen + count):
            if 1 <= token <= len(emitted):
                latencies.append((received - emitted[token - 1]) * 1000)
        seen += count
    call_s = api.get(f"/v1/jobs/{job_id}").json()["duration_ms"] / 1000  # the model call, as the worker timed it
    return {"stream_delta_p50_ms": round(statistics.median(latencies), 1),
            "stream_delta_p95_ms": round(_percentile(latencies, 95), 1),
            "stream_delta_samples": len(latencies), "stream_deltas": len(deltas),
            "stream_wru_per_s": round((totals["wru"] - at_once["wru"]) / call_s, 2),
            "stream_writes_per_s": round((_writes(totals) - _writes(at_once)) / call_s, 2),
            "stream_rru_per_s": round((totals["rru"] - at_once["rru"]) / call_s, 2),
            "worker_wru": {"streamed": totals["wru"], "at_once": at_once["wru"]},
            "model_call_s": round(call_s, 2)}


def _writes(totals: dict[str, Any]) -> int:
    return sum(row["requests"] for row in totals["by_operation"].values() if row["wru"])


def _cancel_one(stack: Any, api: httpx.Client, run: int) -> float:
    from aijobs.worker import CANCEL_CHECK_S

    calls = stack.model.state.calls
    timing: dict[str, float] = {}

    def cancel_when_running() -> None:
        job_id = api.get("/v1/jobs", params={"limit": 1}).json()["data"][0]["id"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not api.get(f"/v1/jobs/{job_id}").json().get("output"):
            time.sleep(0.05)
        time.sleep(CANCEL_CHECK_S * run / CANCEL_RUNS)
        aborted = calls["aborted"]
        timing["cancelled"] = time.monotonic()
        api.delete(f"/v1/jobs/{job_id}").raise_for_status()
        while calls["aborted"] == aborted and time.monotonic() < deadline + 10:
            time.sleep(0.002)
        timing["aborted"] = time.monotonic()

    canceller = threading.Thread(target=cancel_when_running)
    _run(stack, api, f"cancel {run} [[tokens=500]] [[token_ms=50]]", before=canceller.start)
    canceller.join(timeout=40)
    return (timing["aborted"] - timing["cancelled"]) * 1000


def render(s: dict[str, Any]) -> list[str]:
    return [f"Live jobs: one streamed job of {s['tokens']} tokens {s['token_ms']} ms apart "
            f"(a {s['model_call_s']:g} s call), read as SSE through the API on uvicorn",
            f"  stream_delta_p50_ms {s['stream_delta_p50_ms']}, p95 {s['stream_delta_p95_ms']} "
            f"(token emitted -> SSE client; {s['stream_delta_samples']} tokens in {s['stream_deltas']} deltas; "
            "goal p50 <= 250)",
            f"  stream_wru_per_s {s['stream_wru_per_s']} ({s['stream_writes_per_s']} writes/s; goal <= 4) over the "
            f"same answer made at once; the stream read {s['stream_rru_per_s']} RRU/s",
            f"  cancel_to_abort_ms {s['cancel_to_abort_ms']} median, {s['cancel_to_abort_ms_max']} max of "
            f"{s['cancel_runs']} (DELETE -> the model's stream closed; goal < 1000)"]
