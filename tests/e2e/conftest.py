"""End to end: the stack of ``make run`` in a subprocess, driven over HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from aijobs.local.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"tenant-a": "aj_e2e_key_a", "tenant-b": "aj_e2e_key_b"}


@dataclass
class Stack:
    url: str
    aws_endpoint: str
    log_path: Path
    model_url: str

    def client(self, tenant: str = "tenant-a") -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30,
                            headers={"Authorization": f"Bearer {KEYS[tenant]}"})

    def aws(self, service: str) -> Any:
        """A boto3 client on the stack's emulated AWS (to look at queues and tables as an operator would)."""
        return boto3.client(service, endpoint_url=self.aws_endpoint, region_name="us-east-1",
                            aws_access_key_id="local", aws_secret_access_key="local")

    def queue_url(self, logical_id: str) -> str:
        return self.aws("sqs").get_queue_url(QueueName=f"aijobs-local-{logical_id}")["QueueUrl"]


def start_stack(log_path: Path, **env: str) -> tuple[subprocess.Popen[bytes], Stack]:
    port, model_port = free_port(), free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIJOBS_", "OPENAI_"))}
    environment.update({"PORT": str(port), "POWERTOOLS_LOG_LEVEL": "WARNING", "AIJOBS_FAKE_MODEL_PORT": str(model_port),
                        "AIJOBS_DEV_API_KEYS": ",".join(f"{t}:{k}" for t, k in KEYS.items()), **env})
    log = log_path.open("wb")
    process = subprocess.Popen([sys.executable, "-m", "aijobs.local"], cwd=ROOT, env=environment,
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"local stack exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError(f"local stack did not start:\n{log_path.read_text()}")
    match = re.search(r"emulated AWS \(moto\) at (\S+)", log_path.read_text())
    assert match, log_path.read_text()
    return process, Stack(url=url, aws_endpoint=match.group(1), log_path=log_path,
                          model_url=f"http://127.0.0.1:{model_port}")


def stop_stack(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Webhook retries a second apart, so a receiver that is down for a few attempts is tested in seconds; the
    # sweeper every second rather than every 5 minutes.
    process, running = start_stack(tmp_path_factory.mktemp("stack") / "stack.log",
                                   AIJOBS_WEBHOOK_RETRY_SCHEDULE="0,1,1,1,1", AIJOBS_LOCAL_SWEEP_INTERVAL_S="1")
    yield running
    stop_stack(process)
