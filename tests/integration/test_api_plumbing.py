"""The API's plumbing: one error body for every failure, 405 with Allow, the body limit on the bytes that
arrive, request ids, and log keys that never cross from one request to another."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from aijobs.jobs import JobService
from aijobs.observability import logger
from aijobs.services import Services
from tests.integration.conftest import KEY_B, TENANT_A, TENANT_B, api_client


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("PUT", "/v1/jobs/job_01J0000000000000000000000Z", "GET"),
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
