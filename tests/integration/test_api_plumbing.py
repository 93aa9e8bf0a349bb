"""The API's plumbing: one error body for every failure, 405 with Allow, the body limit on the bytes that
arrive (over real HTTP too), request ids, the headers of every answer, and log keys that never cross from one
request to another."""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from aijobs.api import MAX_BODY_BYTES, create_app
from aijobs.jobs import JobService
from aijobs.local.server_process import UvicornThread
from aijobs.local.stack import free_port
from aijobs.observability import logger
from aijobs.services import Services
from tests.integration.conftest import KEY_A, KEY_B, TENANT_A, TENANT_B, api_client


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("PUT", "/v1/jobs/job_01J0000000000000000000000Z", "DELETE, GET"),
    ("DELETE", "/v1/jobs", "GET, POST"),
    ("PUT", "/v1/schedules/sch_01J0000000000000000000000Z", "DELETE, GET, PATCH"),
    ("POST", "/healthz", "GET"),
])
def test_a_wrong_method_is_405_with_the_typed_body_and_every_allowed_method(api: Any, method: str, path: str,
                                                                            allow: str) -> None:
    response = api.request(method, path)

    assert response.status_code == 405
    assert response.headers["Allow"] == allow
    error = response.json()["error"]
    assert (error["type"], error["code"], error["retryable"]) == ("invalid_request", "method_not_allowed", False)
    assert error["request_id"] == response.headers["X-Request-Id"]


def test_a_body_sent_in_chunks_is_cut_off_at_the_limit_and_writes_nothing(api: Any) -> None:
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:  # no Content-Length: only the bytes that arrive can tell
        for _ in range(64):
            sent.append(1)
            yield b'{"input": "' + b"a" * 8192

    response = api.post("/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"})

    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"
    assert response.headers["X-Request-Id"] == response.json()["error"]["request_id"]
    assert api.get("/v1/jobs").json()["data"] == []


@pytest.fixture
def http_server(services: Services) -> Iterator[UvicornThread]:
    """The app behind a real uvicorn on 127.0.0.1 (the in-process client buffers what it sends)."""
    server = UvicornThread(create_app(), free_port())
    server.start()
    yield server
    server.stop()


def _send_chunked_until_answered(port: int, total: int) -> tuple[bytes, int]:
    """POST ``total`` bytes of JSON whitespace, chunked (no Content-Length), until the server answers.

    Answers the raw answer and how many body bytes were sent before it came. The last chunk is never sent: a
    server that waited for the whole body would never answer (the select's timeout fails the test).
    """
    head = (f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY_A}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    chunk = b" " * 65_536
    frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65_536)  # no megabytes parked in the kernel
        sock.sendall(head)
        sock.setblocking(False)
        pending = memoryview(b"")
        while sent < total:
            readable, writable, _ = select.select([sock], [sock], [], 10)
            assert readable or writable, "the server neither answered nor read on"
            if readable:
                break
            if not pending:
                pending, sent = memoryview(frame), sent + len(chunk)
            try:
                pending = pending[sock.send(pending):]
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
            if not (data := sock.recv(65_536)):
                break
            answer += data
    return answer, sent


def _length(answer: bytes) -> int:
    head = answer.partition(b"\r\n\r\n")[0].decode().lower()
    return next((int(line.split(":")[1]) for line in head.split("\r\n") if line.startswith("content-length:")), 0)


def test_ten_megabytes_of_chunked_whitespace_are_413_before_they_are_read(http_server: UvicornThread,
                                                                        api: Any) -> None:
    ten_mb = 10 * 1024 * 1024

    answer, sent = _send_chunked_until_answered(int(http_server.url.rsplit(":", 1)[1]), ten_mb)

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    error = json.loads(body)["error"]
    assert (error["type"], error["code"]) == ("payload_too_large", "body_too_large")
    assert b"cache-control: no-store" in head.lower() and b"x-content-type-options: nosniff" in head.lower()
    assert MAX_BODY_BYTES < sent < ten_mb  # answered once past the limit, long before the end
    assert api.get("/v1/jobs").json()["data"] == []


def test_a_content_length_over_the_limit_is_413_before_any_of_the_body_is_read(api: Any) -> None:
    def body() -> Iterator[bytes]:
        raise AssertionError("the body was read")
        yield b""

    response = api.post("/v1/jobs", content=body(), headers={"Content-Type": "application/json",
                                                             "Content-Length": str(MAX_BODY_BYTES + 1)})

    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"


@pytest.mark.parametrize("length", [str(MAX_BODY_BYTES + 1), "9" * 5000])
def test_a_route_that_takes_no_body_ignores_its_content_length(api: Any, length: str) -> None:
    # Only a route that reads a body can answer 413 (its OpenAPI entry says so); the others do not read it.
    response = api.request("GET", "/v1/jobs", headers={"Content-Length": length}, content=b"")

    assert response.status_code == 200


@pytest.mark.parametrize(("method", "path", "key", "status"), [
    ("GET", "/v1/webhook-secrets", KEY_A, 200),
    ("POST", "/v1/webhook-secrets/rotate", KEY_A, 201),
    ("GET", "/v1/jobs", KEY_A, 200),
    ("POST", "/v1/jobs", KEY_A, 202),
    ("GET", "/v1/jobs/job_01J0000000000000000000000Z", KEY_A, 404),
    ("GET", "/v1/jobs", "wrong", 401),
    ("GET", "/v1/jobs", "", 401),
    ("PUT", "/v1/jobs", KEY_A, 405),
    ("GET", "/v1/nowhere", KEY_A, 404),
    ("POST", "/v1/schedules", KEY_A, 422),
    ("GET", "/healthz", "", 200),
    ("GET", "/openapi.json", "", 200),
])
def test_every_answer_says_no_store_and_nosniff_once(services: Services, method: str, path: str, key: str,
                                                      status: int) -> None:
    with api_client(key) as client:
        response = client.request(method, path, json={"input": "hi"} if path == "/v1/jobs" and method == "POST"
                                  else {} if method == "POST" else None)

    assert response.status_code == status
    assert response.headers.get_list("Cache-Control") == ["no-store"]
    assert response.headers.get_list("X-Content-Type-Options") == ["nosniff"]


def test_an_unexpected_error_is_a_typed_500_that_says_nothing_of_it(api: Any, services: Services) -> None:
    class Broken(JobService):
        def submit_job(self, **kwargs: Any) -> Any:
            raise RuntimeError("secret internals: s3cr3t")

    real = services.jobs
    services.__dict__["jobs"] = Broken(store=real.store, queue=real.queue, default_model=real.default_model,
                                       retention_s=real.retention_s)

    response = api.post("/v1/jobs", json={"input": "hello"})

    assert response.status_code == 500
    assert response.json()["error"] == {"type": "internal", "code": "internal", "message": "internal error",
                                        "retryable": False, "request_id": response.headers["X-Request-Id"]}
    assert response.headers["Cache-Control"] == "no-store" and response.headers["X-Content-Type-Options"] == "nosniff"
    assert "s3cr3t" not in response.text


def test_api_gateways_request_id_is_the_one_answered(api: Any) -> None:
    # Mangum puts the event in the scope; the in-process client has none, so every request gets a fresh id.
    first, second = api.get("/healthz"), api.get("/healthz")

    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]
    assert len(first.headers["X-Request-Id"]) == 32


@pytest.fixture
def log_lines() -> Iterator[list[dict[str, Any]]]:
    """Every log line as JSON, formatted when it is written (the keys of a context are gone later)."""
    lines: list[dict[str, Any]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(self.format(record)))

    handler = Keep()
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def test_each_request_logs_its_own_tenant_even_when_requests_overlap(
        api: Any, services: Services, log_lines: list[dict[str, Any]]) -> None:
    # Tenant A's request is held inside the route while tenant B's runs from start to end; then A logs.
    a_inside, b_done = threading.Event(), threading.Event()
    real = services.jobs

    class Interleaved(JobService):
        def submit_job(self, **kwargs: Any) -> Any:
            if kwargs["tenant"] == TENANT_A:
                a_inside.set()
                b_done.wait(10)
            logger.info("inside the route")  # names no tenant: the request's context must
            return real.submit_job(**kwargs)

    services.__dict__["jobs"] = Interleaved(store=real.store, queue=real.queue, default_model=real.default_model,
                                            retention_s=real.retention_s)
    answers: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: answers.setdefault("a", api.post("/v1/jobs", json={"input": "from a"})))
    thread.start()
    assert a_inside.wait(10)
    with api_client(KEY_B) as other:
        answers["b"] = other.post("/v1/jobs", json={"input": "from b"})
    b_done.set()
    thread.join(10)

    inside = {line["request_id"]: line.get("tenant") for line in log_lines if line["message"] == "inside the route"}
    assert inside == {answers["a"].headers["X-Request-Id"]: TENANT_A, answers["b"].headers["X-Request-Id"]: TENANT_B}


def test_behind_api_gateway_each_request_logs_one_access_line_with_its_tenant_and_never_its_key_or_body(
        services: Services, log_lines: list[dict[str, Any]]) -> None:
    from aijobs.local.pollers import FakeLambdaContext
    from aijobs.local.stack import load_handler
    from tests.helpers import load_event

    event = load_event("api_submit_job")
    event["rawQueryString"] = "secret_param=query-secret-1"
    # A caller's own request-context header is ignored where API Gateway's event is there.
    event["headers"]["x-amzn-request-context"] = json.dumps({"requestId": "forged", "http": {"sourceIp": "192.0.2.1"}})
    response = load_handler("api", "handler")(event, FakeLambdaContext("ApiFunction", timeout_s=29))

    assert response["statusCode"] == 202
    (line,) = [line for line in log_lines if line["message"] == "request"]
    assert {key: line[key] for key in ("request_id", "tenant", "method", "path", "status", "source_ip")} == {
        "request_id": "Kx1aAbCdIAMEVxw=", "tenant": TENANT_A, "method": "POST", "path": "/v1/jobs", "status": 202,
        "source_ip": "203.0.113.7"}
    text = json.dumps(log_lines)
    for secret in (KEY_A, "query-secret-1", "Hamlet", "order-1234"):
        assert secret not in text
