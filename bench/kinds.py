"""Job kinds and lanes (issue 13): what an embeddings job of 1,000 texts and an image job take through the worker,
what checking a structured output costs, and how far a high-priority job overtakes a low-priority backlog.

In-process: moto and the fake model, the worker handler invoked as its event source mapping would. The kinds' AWS
requests are counted with the botocore hooks of bench/recorder.py (the worker's: claim, files, completion, usage).

Lanes: BACKLOG low-priority jobs (each MODEL_MS of model time) are queued, then one high-priority job; each lane's
queue is polled by its own worker instance, as each lane's event source mapping is. The figure is how many of the
backlog had completed when the high job completed; against it, the same with every job in one queue (no lanes).
"""

from __future__ import annotations

import json
import os
import threading
import time
import warnings
from contextlib import suppress
from typing import Any

TEXTS = 1000
BACKLOG = 100
MODEL_MS = 100
CHECK_RUNS = 2000
TIMEOUT_S = 60
SCHEMA = {"type": "object", "additionalProperties": False, "required": ["name", "email", "tags"], "properties": {
    "name": {"type": "string"}, "email": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}}}


def measure() -> dict[str, Any]:
    from bench.lifecycle import local_stack

    with local_stack() as stack:
        stack.services.worker  # noqa: B018 (built before any poller thread races to build it)
        embedding = _one_job(stack, {"kind": "embedding", "model": "text-embedding-3-small",
                                     "input": [f"document {i}: the quick brown fox" for i in range(TEXTS)]})
        image = _one_job(stack, {"kind": "image", "input": "a lighthouse at dusk", "size": "1024x1024"})
        lanes = _overtaking(stack, lanes=True)
        one_queue = _overtaking(stack, lanes=False)
    return {"embedding_1000_texts": embedding, "image_1024": image, "structured_check": _check_cost(),
            "lanes": {"backlog": BACKLOG, "model_ms": MODEL_MS,
                      "low_done_before_high": lanes, "low_done_before_high_one_queue": one_queue}}


def _one_job(stack: Any, body: dict[str, Any]) -> dict[str, Any]:
    """Submit one job, run the worker on its message; its time, AWS requests, file bytes, usage and cost."""
    from aijobs.models.jobs import JobRequest
    from bench.lifecycle import receive, run_worker_only
    from bench.recorder import summarize

    job = stack.services.jobs.submit_job(tenant="bench-kinds", request=JobRequest(**body))
    messages = receive(stack, 1)
    stack.recorder.take()
    stack.recorder.phase = "worker"
    seconds = run_worker_only(stack, messages)
    stack.recorder.phase = None
    calls = summarize(stack.recorder.take())
    stack.esm_sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
    done = stack.services.store.get_job(job.id)
    if done is None or done.status.value != "completed":
        raise RuntimeError(f"the {body['kind']} job did not complete: {done.error if done else 'gone'}")
    s3 = stack.services.session.client("s3")
    size = sum(s3.head_object(Bucket=stack.services.settings.results_bucket, Key=key)["ContentLength"]
               for key in done.output_files or [])
    return {"worker_s": round(seconds, 3), "aws_requests": calls["aws_requests"], "wru": calls["wru"],
            "file_bytes": size, "usage": done.usage.model_dump() if done.usage else None,
            "cost_usd": float(done.cost_usd or 0)}


def _check_cost() -> dict[str, Any]:
    """The worker's check of one structured output against its schema: the first (jsonschema's import included),
    then the median of CHECK_RUNS."""
    from aijobs.models.jobs import JobRequest
    from aijobs.structured import check_output

    started = time.perf_counter()
    response_format = JobRequest(input="x", response_format={
        "type": "json_schema", "json_schema": {"name": "contact", "schema": SCHEMA}}).response_format
    assert response_format is not None
    output = json.dumps({"name": "Ada", "email": "ada@example.com", "tags": ["math", "engines"]})
    if check_output(response_format, output) is not None:
        raise RuntimeError("the bench's output does not match its schema")
    first_ms = (time.perf_counter() - started) * 1000
    times = []
    for _ in range(CHECK_RUNS):
        started = time.perf_counter()
        check_output(response_format, output)
        times.append(time.perf_counter() - started)
    times.sort()
    return {"first_ms": round(first_ms, 1), "median_us": round(times[len(times) // 2] * 1e6, 1)}


def _overtaking(stack: Any, *, lanes: bool) -> int:
    """How many of the low backlog completed before the high job did (each lane polled by one worker instance)."""
    from aijobs.local.pollers import QueuePoller
    from aijobs.models.jobs import JobRequest, JobStatus

    services = stack.services
    if not lanes:  # one queue: every lane's messages go to the normal one
        queue = services.job_queue
        saved = dict(queue._lanes)
        queue._lanes.update({lane: stack.queue_url for lane in queue._lanes})
    tag = "lanes" if lanes else "one-queue"
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    warnings.filterwarnings("ignore", "No application metrics to publish")
    try:
        low = [r.id for start in range(0, BACKLOG, 100) for r in services.jobs.submit_jobs(
            tenant=f"bench-lanes-{tag}", items=[{"input": f"low {tag} {i} [[delay_ms={MODEL_MS}]]", "priority": "low"}
                                                for i in range(start, min(BACKLOG, start + 100))])]
        high = services.jobs.submit_job(tenant=f"bench-lanes-{tag}", request=JobRequest(
            input=f"high {tag} [[delay_ms={MODEL_MS}]]", priority="high")).id
        urls = {stack.lanes[lane] for lane in ("high", "low")} if lanes else {(stack.queue_url, stack.queue_arn)}
        pollers = [QueuePoller(name="WorkerFunction", sqs=stack.esm_sqs, queue_url=url, queue_arn=arn,
                               handler=stack.worker) for url, arn in urls]
        stop = threading.Event()

        def instance(poller: QueuePoller) -> None:
            while not stop.is_set():
                with suppress(Exception):
                    poller.poll_once(wait_s=1)

        threads = [threading.Thread(target=instance, args=(p,), daemon=True) for p in pollers]
        for thread in threads:
            thread.start()
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while time.monotonic() < deadline:
                state = services.store.get_state(high)
                if state is not None and state.status is JobStatus.completed:
                    break
                time.sleep(0.02)
            done = sum(s.status is JobStatus.completed for s in services.store.get_states(low).values())
            while time.monotonic() < deadline and any(  # the rest of the backlog, before the pollers stop
                    not s.status.is_terminal for s in services.store.get_states(low).values()):
                time.sleep(0.1)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=5)
    finally:
        if not lanes:
            queue._lanes.update(saved)
    return done


def render(k: dict[str, Any]) -> list[str]:
    e, i, c, lanes = k["embedding_1000_texts"], k["image_1024"], k["structured_check"], k["lanes"]
    return [
        "Job kinds (in-process: moto and the fake model; the worker's AWS requests counted with botocore hooks)",
        f"  embeddings, {TEXTS} texts: worker {e['worker_s']:.2f} s, {e['aws_requests']} AWS requests, "
        f"{e['wru']} WRU, vector file {e['file_bytes'] / 1e6:.2f} MB, ${e['cost_usd']:.6f}",
        f"  image 1024x1024: worker {i['worker_s']:.2f} s, {i['aws_requests']} AWS requests, {i['wru']} WRU, "
        f"PNG {i['file_bytes']} bytes, ${i['cost_usd']:.2f}",
        f"  structured output check: first {c['first_ms']} ms (jsonschema's import), then {c['median_us']} us",
        f"Priority lanes: {lanes['backlog']} low jobs ({lanes['model_ms']} ms each) queued, then one high job",
        f"  low jobs done before the high one: {lanes['low_done_before_high']} with lanes, "
        f"{lanes['low_done_before_high_one_queue']} in one queue",
    ]
