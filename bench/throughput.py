"""Local throughput (issue 16): jobs a second through `make run`'s stack against the emulator's own ceiling.

Both in one run, against the same emulator: the stack is started as `make run` starts it (a subprocess, its moto
server, API, pollers and the fake model, answering at once). The ceiling is a bare loop of the cycle a job needs
at least (PutItem, SendMessage, ReceiveMessage, UpdateItem, DeleteMessage) on a table and a queue of its own in the
stack's moto server, while the stack idles. Then JOBS jobs are submitted in batches of 100 and the batches'
counts polled until each has ended: jobs a second from the first submit to the last end. Both are timed warm, as
a Lambda function that has served a request is: after WARM_UP cycles, and after a batch of WARM_UP jobs has ended.
Every job must then read completed, and the fake model must have been called once per job (none run twice).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
JOBS = 300
CYCLES = 300
# Untimed first: jobs through the stack (its first model call imports the SDK, ~0.5 s), cycles of the ceiling.
WARM_UP = 20
ROUNDS = 3
KEY = "aj_bench_throughput"
TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def stack_process(**extra_env: str) -> Iterator[dict[str, str]]:
    """`make run`'s stack in a subprocess, as it starts for a user (with ``extra_env``): its API's, the fake model's
    and the emulator's URLs while it runs; Ctrl-C'd at the end."""
    port, model_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIJOBS_", "OPENAI_"))}
    env.update({"PORT": str(port), "AIJOBS_FAKE_MODEL_PORT": str(model_port), "POWERTOOLS_LOG_LEVEL": "WARNING",
                "AIJOBS_DEV_API_KEYS": f"bench-throughput:{KEY}", **extra_env})
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "stack.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "aijobs.local"], cwd=ROOT, env=env, stdout=log,
                                       stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(process, url, log_path)
            found = re.search(r"emulated AWS \(moto\) at (\S+)", log_path.read_text())
            if found is None:
                raise RuntimeError("the local stack did not say where its emulator is")
            yield {"api": url, "model": f"http://127.0.0.1:{model_port}", "aws": found.group(1)}
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def measure() -> dict[str, Any]:
    import httpx

    with stack_process() as urls:
        ceiling = _ceiling(urls["aws"])
        with httpx.Client(base_url=urls["api"], headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as client:
            stack = _through_the_stack(client, urls["model"])
    return {"jobs": JOBS, "cycles": CYCLES, "emulator_cycles_per_s": round(ceiling, 1),
            "stack_jobs_per_s": round(stack["jobs_per_s"], 1), "ratio": round(stack["jobs_per_s"] / ceiling, 2),
            **{k: v for k, v in stack.items() if k != "jobs_per_s"}}


def _wait_ready(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    import httpx

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the local stack exited:\n{log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the local stack did not start")


def _ceiling(endpoint: str) -> float:
    """Cycles a second of the bare loop, on a table and a queue of its own in the stack's emulator: the fastest of
    ROUNDS rounds (a round slowed by the machine's neighbours would flatter the ratio)."""
    import boto3

    session = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1")
    dynamodb = session.client("dynamodb", endpoint_url=endpoint)
    sqs = session.client("sqs", endpoint_url=endpoint)
    dynamodb.create_table(TableName="bench-ceiling", BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    queue = sqs.create_queue(QueueName="bench-ceiling")["QueueUrl"]

    def cycle(i: int) -> None:
        key = {"pk": {"S": f"JOB#{i}"}}
        dynamodb.put_item(TableName="bench-ceiling", Item={**key, "status": {"S": "queued"}})
        sqs.send_message(QueueUrl=queue, MessageBody=f'{{"job_id": "{i}"}}')
        message = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1)["Messages"][0]
        dynamodb.update_item(TableName="bench-ceiling", Key=key, UpdateExpression="SET #s = :s",
                             ExpressionAttributeNames={"#s": "status"},
                             ExpressionAttributeValues={":s": {"S": "completed"}})
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])

    for i in range(WARM_UP):
        cycle(-1 - i)
    rates = []
    for start in range(0, CYCLES, CYCLES // ROUNDS):
        started = time.perf_counter()
        for i in range(start, start + CYCLES // ROUNDS):
            cycle(i)
        rates.append(CYCLES // ROUNDS / (time.perf_counter() - started))
    return max(rates)


def _through_the_stack(client: Any, model_url: str) -> dict[str, Any]:
    """Jobs a second from the first submit to the last end, watched as a user of batches watches them: each batch's
    counts (``GET /v1/batches/{id}``, one read), then every job's status once at the end. A batch of WARM_UP jobs
    runs to its end first, untimed."""
    import httpx

    _run_jobs(client, WARM_UP, label="warm-up")
    before = httpx.get(f"{model_url}/_stats").json().get("total", 0)
    started = time.perf_counter()
    ids = _run_jobs(client, JOBS, label="throughput")
    elapsed = time.perf_counter() - started
    statuses = [item["status"] for start in range(0, JOBS, 100)
                for item in client.post("/v1/jobs/status", json={"ids": ids[start:start + 100]}).json()["data"]]
    calls = httpx.get(f"{model_url}/_stats").json().get("total", 0) - before
    ended = {s: statuses.count(s) for s in set(statuses)}
    if ended.get("completed") != JOBS or calls != JOBS:
        raise RuntimeError(f"through the local stack: {ended} of {JOBS} jobs, {calls} model calls")
    return {"jobs_per_s": JOBS / elapsed, "seconds": round(elapsed, 2), "model_calls": calls, "ended": ended}


def _run_jobs(client: Any, jobs: int, *, label: str) -> list[str]:
    """Submit ``jobs`` jobs in batches of 100 and wait until every batch has ended; their ids."""
    started = time.perf_counter()
    ids: list[str] = []
    batches: list[str] = []
    for start in range(0, jobs, 100):
        answer = client.post("/v1/jobs/batch", json={"jobs": [{"input": f"{label} {n}"}
                                                              for n in range(start, min(start + 100, jobs))]})
        if answer.status_code != 202:
            raise RuntimeError(f"the batch answered {answer.status_code}: {answer.text[:500]}")
        ids += [item["id"] for item in answer.json()["data"]]
        batches.append(answer.json()["batch_id"])
    while batches and time.perf_counter() - started < TIMEOUT_S:
        batches = [b for b in batches if client.get(f"/v1/batches/{b}").json()["status"] != "completed"]
        time.sleep(0.1)
    return ids


def render(t: dict[str, Any]) -> list[str]:
    return [
        "Local throughput (make run's stack in a subprocess, its moto server, the fake model answering at once)",
        f"  emulator ceiling: {t['emulator_cycles_per_s']} cycles/s (PutItem, SendMessage, ReceiveMessage, UpdateItem, "
        f"DeleteMessage; the fastest of {ROUNDS} rounds of {t['cycles'] // ROUNDS} in a loop, warm)",
        f"  the stack: {t['jobs']} jobs in batches of 100 to all ended in {t['seconds']} s: {t['stack_jobs_per_s']} "
        f"jobs/s, ratio {t['ratio']:.2f} (every job completed, {t['model_calls']} model calls)",
    ]
