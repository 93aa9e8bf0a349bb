"""The streaming front as the Lambda Web Adapter drives it: functions/stream/run.sh starts uvicorn on AWS_LWA_PORT,
the adapter waits for /healthz, then relays each function URL request to 127.0.0.1 with the URL's request context in
``x-amzn-request-context`` (replacing any header of that name the caller sent). Here the test is the adapter.

Only routes that need no AWS are called: the process has no emulated AWS to reach.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from aijobs.local.stack import free_port
from tests.helpers import eventually

ROOT = Path(__file__).resolve().parents[2]
RUN_SH = ROOT / "functions" / "stream" / "run.sh"


@dataclass
class Front:
    url: str
    log_path: Path

    def relay(self, method: str, path: str, *, source_ip: str, request_id: str, **kwargs: Any) -> httpx.Response:
        """A request as the adapter relays it: the function URL's context (its shape) in the header."""
        context = {"requestId": request_id, "http": {"method": method, "path": path, "sourceIp": source_ip}}
        headers = {"x-amzn-request-context": json.dumps(context), **kwargs.pop("headers", {})}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=10, **kwargs)

    def access_lines(self) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]
        return [line for line in lines if line.get("message") == "request"]

    def access_line(self, request_id: str) -> dict[str, Any]:
        """The request's one access line: written once the answer is out, so it may come just after it."""
        lines = eventually(lambda: [line for line in self.access_lines() if line["request_id"] == request_id],
                           timeout_s=5)
        (line,) = lines
        return line


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    port = free_port()
    log_path = tmp_path_factory.mktemp("stream") / "run.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIJOBS_", "OPENAI_"))}
    environment.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}",  # run.sh's `python`
        "AWS_LWA_PORT": str(port), "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # nothing here may reach AWS
        "AIJOBS_AUTH_FAILURES_LIMIT": "2", "POWERTOOLS_METRICS_DISABLED": "true"})
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(RUN_SH)], cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:  # the adapter's readiness check
            assert process.poll() is None, f"run.sh exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"no answer on /healthz:\n{log_path.read_text()}"
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield Front(url=url, log_path=log_path)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_run_sh_is_executable_and_serves_the_api_app(front: Front) -> None:
    assert os.access(RUN_SH, os.X_OK)

    response = httpx.get(f"{front.url}/openapi.json", timeout=10)

    assert response.status_code == 200
    assert "/v1/jobs" in response.json()["paths"]  # every route, not only the stream
    assert "server" not in response.headers


def test_the_function_urls_request_id_is_answered_and_logged(front: Front) -> None:
    response = front.relay("GET", "/healthz", source_ip="192.0.2.10", request_id="furl-req-1")

    assert response.headers["X-Request-Id"] == "furl-req-1"
    line = front.access_line("furl-req-1")
    assert (line["method"], line["path"], line["status"], line["source_ip"]) == ("GET", "/healthz", 200, "192.0.2.10")
    assert line["duration_ms"] >= 0


def test_failed_authentications_count_by_the_function_urls_address_never_x_forwarded_for(front: Front) -> None:
    # A function URL hands the app only the leftmost X-Forwarded-For, which the caller writes: a new one each time
    # must not buy a new allowance (AIJOBS_AUTH_FAILURES_LIMIT is 2 here).
    statuses = [front.relay("GET", "/v1/jobs", source_ip="198.51.100.7", request_id=f"bad-{n}",
                            headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code for n in range(3)]
    other = front.relay("GET", "/v1/jobs", source_ip="198.51.100.8", request_id="other-caller")

    assert statuses == [401, 401, 429]
    assert other.status_code == 401  # another address is not refused for the first one's failures
    assert {front.access_line(f"bad-{n}")["source_ip"] for n in range(3)} == {"198.51.100.7"}


def test_the_access_log_holds_no_header_query_string_or_body(front: Front) -> None:
    # Not a Bearer key, so it is refused without a lookup (this process has no AWS to look in).
    response = front.relay("POST", "/v1/jobs?token=query-secret-1", source_ip="192.0.2.11", request_id="private-1",
                           headers={"Authorization": "Basic aj_key_secret_2", "Cookie": "session=cookie-secret-3"},
                           json={"input": "a prompt secret-4"})

    assert response.status_code == 401
    line = front.access_line("private-1")
    assert (line["method"], line["path"], line["status"]) == ("POST", "/v1/jobs", 401)
    text = front.log_path.read_text()
    for secret in ("query-secret-1", "aj_key_secret_2", "cookie-secret-3", "secret-4", "token="):
        assert secret not in text
    assert "authorization" not in json.dumps(line).lower()


def test_a_malformed_request_context_is_ignored_not_trusted(front: Front) -> None:
    headers = {"x-amzn-request-context": '{"requestId": "bad id\\n", "http": {"sourceIp": "not-an-ip"}}'}

    response = httpx.get(f"{front.url}/healthz", headers=headers, timeout=10)

    assert response.status_code == 200
    assert len(response.headers["X-Request-Id"]) == 32  # a fresh id, not the context's
    line = front.access_line(response.headers["X-Request-Id"])
    assert line["source_ip"] == "127.0.0.1"  # the peer's


def test_the_apps_metrics_go_out_when_a_request_ends(services: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # No Lambda handler to flush them (uvicorn serves the app): functions/stream/app.py does, per request.
    from fastapi.testclient import TestClient

    from aijobs.local.stack import load_handler
    from aijobs.observability import metrics
    from tests.integration.conftest import KEY_A

    metrics.clear_metrics()  # what earlier tests counted outside a handler
    with TestClient(load_handler("stream", "app"), headers={"Authorization": f"Bearer {KEY_A}"}) as client:
        capsys.readouterr()
        assert client.get("/healthz").status_code == 200
        quiet = capsys.readouterr()
        assert client.post("/v1/jobs", json={"input": "counted"}).status_code == 202
        counted = capsys.readouterr()

    assert '"_aws"' not in quiet.out and "No application metrics" not in quiet.err
    (blob,) = [json.loads(line) for line in counted.out.splitlines() if '"_aws"' in line]
    assert blob["JobsSubmitted"] in (1.0, [1.0]) and blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "aijobs"
    assert not metrics.metric_set
