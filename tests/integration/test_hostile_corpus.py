"""A corpus of hand-made hostile requests: each answers a typed 4xx (its status and error type) or the legitimate
2xx, never a 5xx, and every answer carries the headers every answer must (no-store, nosniff, its request id).

The app runs in-process on moto with the deployed settings (https callbacks on public addresses only). Cases that
once answered 500 or burned CPU are marked; the body limit over real HTTP with chunked framing is in
test_api_plumbing.py, the guard's every notation in tests/unit/test_webhook_guard.py and test_webhook_sender.py.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from aijobs.api import create_app
from aijobs.local.server_process import UvicornThread
from tests.integration.conftest import TENANT_A, MotoWorld, api_client, installed_services

JOB = "job_01J0000000000000000000000Z"
SCHEDULE = "sch_01J0000000000000000000000Z"
PROMPT = "pmpt_01J0000000000000000000000Z"
BATCH = "bat_01J0000000000000000000000Z"
COLLECTION = "col_01J0000000000000000000000Z"
RESPONSE = "resp_01J0000000000000000000000Z"
ENDPOINT = "we_01J0000000000000000000000Z"
SURROGATE = "\\ud800"  # as JSON spells it
EMOJI = "\U0001f600"  # four bytes in UTF-8


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def _job(**fields: Any) -> bytes:
    return json.dumps({"input": "hi", **fields}).encode()


def _schedule(expression: str, timezone: str = "UTC") -> bytes:
    return json.dumps({"expression": expression, "timezone": timezone, "job": {"input": "hi"}}).encode()


def _largest_item() -> dict[str, Any]:
    """Within every character limit, but over 437 KB as UTF-8 JSON: more than one DynamoDB item holds."""
    return {"input": EMOJI * 50_000, "instructions": EMOJI * 50_000,
            "metadata": {f"{i:02d}" + EMOJI * 62: EMOJI * 512 for i in range(16)},
            "callback_url": "https://hooks.example.com/" + "a" * 2000}


@dataclass(frozen=True)
class Hostile:
    name: str
    method: str
    path: str
    status: int
    error: str | None = None  # error.type of a 4xx; None for a 2xx
    body: bytes | None = None
    headers: dict[str, str | bytes] = field(default_factory=dict)
    params: dict[str, str] | None = None
    code: str | None = None  # error.code, where it says more than the type

    def send(self, client: Any) -> Any:
        headers = {"Content-Type": "application/json", **self.headers} if self.body is not None else self.headers
        return client.request(self.method, self.path, content=self.body, headers=headers, params=self.params)


def post_job(name: str, body: bytes, status: int, error: str | None = None, code: str | None = None,
             **kwargs: Any) -> Hostile:
    return Hostile(name, "POST", "/v1/jobs", status, error, body=body, code=code, **kwargs)


def bad_callback(name: str, url: str) -> Hostile:
    return post_job(f"callback {name}", _job(callback_url=url), 422, "invalid_request", "callback_url_forbidden")


CORPUS = [
    # issue 17 point 5: inputs that once answered 500
    post_job("lone surrogate in input", f'{{"input": "a{SURROGATE}b"}}'.encode(), 422, "invalid_request",
             "invalid_fields"),
    post_job("temperature 1e-131", b'{"input": "hi", "temperature": 1e-131}', 202),
    post_job("temperature 5e-324", b'{"input": "hi", "temperature": 5e-324}', 202),
    post_job("Prefer wait with 4,301 digits", _job(), 202, headers={"Prefer": "wait=" + "9" * 4301}),
    Hostile("cursor with a number for a key", "GET", "/v1/jobs", 422, "invalid_request", code="invalid_cursor",
            params={"cursor": _cursor({"pk": 1, "sk": "JOB", "gsi1pk": f"TENANT#{TENANT_A}", "gsi1sk": "x"})}),
    Hostile("cursor with null, bool and list values", "GET", "/v1/schedules", 422, "invalid_request",
            code="invalid_cursor", params={"cursor": _cursor({"pk": None, "sk": True, "gsi1pk": ["x"],
                                                              "gsi1sk": {"S": "x"}})}),
    Hostile("cursor that is a list", "GET", "/v1/jobs", 422, "invalid_request", code="invalid_cursor",
            params={"cursor": _cursor([1, 2])}),
    Hostile("cursor that is not base64", "GET", "/v1/jobs", 422, "invalid_request", code="invalid_cursor",
            params={"cursor": "!!!\x00"}),
    Hostile("at(9999-12-31T23:59:59) in Etc/GMT+12", "POST", "/v1/schedules", 422, "invalid_request",
            body=_schedule("at(9999-12-31T23:59:59)", "Etc/GMT+12"), code="invalid_expression"),
    # these two never fire (the DST gap swallows every time) and took over 1 s of CPU before answering 500
    Hostile("cron(30 2 ? 3 1L *) in Europe/Paris", "POST", "/v1/schedules", 422, "invalid_request",
            body=_schedule("cron(30 2 ? 3 1L *)", "Europe/Paris"), code="invalid_expression"),
    Hostile("cron(30 2 ? 3 1#5 *) in Europe/Paris", "POST", "/v1/schedules", 422, "invalid_request",
            body=_schedule("cron(30 2 ? 3 1#5 *)", "Europe/Paris"), code="invalid_expression"),
    Hostile("batch with a 437 KB item among valid ones", "POST", "/v1/jobs/batch", 202,
            body=json.dumps({"jobs": [{"input": "a"}, _largest_item(), {"input": "b"}]}).encode()),
    Hostile("batch over the request limit", "POST", "/v1/jobs/batch", 413, "payload_too_large",
            body=json.dumps({"jobs": [{"input": "x" * 99_000}] * 50}).encode(), code="body_too_large"),
    # JSON the parser takes badly
    post_job("deeply nested JSON", b'{"input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "invalid_request",
             "invalid_json"),
    post_job("deeply nested metadata", b'{"input": "hi", "metadata": ' + b'{"a": ' * 20_000 + b'"v"'
             + b"}" * 20_001, 400, "invalid_request", "invalid_json"),
    post_job("a number of 5,000 digits", b'{"input": "hi", "max_output_tokens": ' + b"9" * 5000 + b"}", 400,
             "invalid_request", "invalid_json"),
    post_job("1e400", b'{"input": "hi", "temperature": 1e400}', 422, "invalid_request", "invalid_fields"),
    post_job("NaN", b'{"input": "hi", "temperature": NaN}', 422, "invalid_request", "invalid_fields"),
    post_job("Infinity", b'{"input": "hi", "max_output_tokens": Infinity}', 422, "invalid_request"),
    post_job("-Infinity", b'{"input": "hi", "timeout_s": -Infinity}', 422, "invalid_request"),
    post_job("duplicate keys: the last one counts", b'{"input": 1, "input": "hi"}', 202),
    post_job("truncated JSON", b'{"input": ', 400, "invalid_request", "invalid_json"),
    post_job("not UTF-8", b'{"input": "\xff\xfe"}', 400, "invalid_request", "invalid_json"),
    post_job("a surrogate encoded in UTF-8 bytes", b'{"input": "\xed\xa0\x80"}', 422, "invalid_request"),
    post_job("a JSON array", b"[]", 422, "invalid_request"),
    post_job("JSON null", b"null", 422, "invalid_request"),
    post_job("an empty body", b"", 422, "invalid_request"),
    post_job("null bytes in the input", b'{"input": "a\\u0000b"}', 202),
    # content types
    post_job("text/plain", _job(), 422, "invalid_request", headers={"Content-Type": "text/plain"}),
    post_job("a form", b"input=hi", 422, "invalid_request",
             headers={"Content-Type": "application/x-www-form-urlencoded"}),
    post_job("multipart", b"--x\r\nContent-Disposition: form-data; name=input\r\n\r\nhi\r\n--x--\r\n", 422,
             "invalid_request", headers={"Content-Type": "multipart/form-data; boundary=x"}),
    # fields
    post_job("a model name with control characters", _job(model="gpt\u0007\u0000mini"), 422, "invalid_request"),
    post_job("a model name with a newline", _job(model="gpt-4o\nX-Injected: 1"), 422, "invalid_request"),
    post_job("1,000 messages", _job(input=[{"role": "user", "content": "x"}] * 1000), 422, "invalid_request"),
    post_job("a role that is not one", _job(input=[{"role": "root", "content": "x"}]), 422, "invalid_request"),
    post_job("1,000 metadata keys", _job(metadata={str(i): "v" for i in range(1000)}), 422, "invalid_request"),
    post_job("stream as text", _job(stream="maybe"), 422, "invalid_request"),
    Hostile("status of 101 ids", "POST", "/v1/jobs/status", 422, "invalid_request",
            body=json.dumps({"ids": [JOB] * 101}).encode()),
    Hostile("an empty batch", "POST", "/v1/jobs/batch", 422, "invalid_request", body=b'{"jobs": []}'),
    Hostile("a timezone that is a path", "POST", "/v1/schedules", 422, "invalid_request",
            body=_schedule("rate(1 hour)", "../../../etc/passwd"), code="invalid_timezone"),
    Hostile("an expression of 10,000 characters", "POST", "/v1/schedules", 422, "invalid_request",
            body=_schedule("cron(" + "0," * 5000 + ")")),
    # headers
    post_job("Idempotency-Key empty", _job(), 422, "invalid_request", "invalid_idempotency_key",
             headers={"Idempotency-Key": ""}),
    post_job("Idempotency-Key of 256 characters", _job(), 422, "invalid_request", "invalid_idempotency_key",
             headers={"Idempotency-Key": "k" * 256}),
    post_job("Idempotency-Key of 255 characters", _job(), 202, headers={"Idempotency-Key": "k" * 255}),
    post_job("Idempotency-Key with a null byte", _job(), 422, "invalid_request", "invalid_idempotency_key",
             headers={"Idempotency-Key": b"a\x00b"}),
    post_job("Idempotency-Key in Latin-1", _job(), 422, "invalid_request", "invalid_idempotency_key",
             headers={"Idempotency-Key": "caf\u00e9".encode("latin-1")}),
    Hostile("Authorization with a null byte", "GET", "/v1/jobs", 401, "authentication",
            headers={"Authorization": b"Bearer aj_test_key_a\x00"}),
    Hostile("Authorization of 10,000 characters", "GET", "/v1/jobs", 401, "authentication",
            headers={"Authorization": "Bearer " + "k" * 10_000}),
    post_job("Prefer wait negative", _job(), 202, headers={"Prefer": "wait=-5"}),
    # paths and queries
    Hostile("an id of 3,000 characters", "GET", "/v1/jobs/job_" + "x" * 3000, 422, "invalid_request"),
    Hostile("a path of 20,000 characters", "GET", "/v1/" + "a" * 20_000, 404, "not_found", code="route_not_found"),
    Hostile("unicode in a job id", "GET", f"/v1/jobs/job_\u00f1{EMOJI}", 404, "not_found"),
    Hostile("a null byte in a job id", "GET", "/v1/jobs/job_%00", 404, "not_found"),
    Hostile("an encoded surrogate in a schedule id", "GET", "/v1/schedules/%ED%A0%80", 404, "not_found"),
    Hostile("unicode in a schedule id to delete", "DELETE", f"/v1/schedules/sch_{EMOJI}", 404, "not_found"),
    Hostile("limit -1", "GET", "/v1/jobs", 422, "invalid_request", params={"limit": "-1"}),
    Hostile("limit 0", "GET", "/v1/schedules", 422, "invalid_request", params={"limit": "0"}),
    Hostile("limit of 5,000 digits", "GET", "/v1/jobs", 422, "invalid_request", params={"limit": "9" * 5000}),
    Hostile("limit not a number", "GET", "/v1/jobs", 422, "invalid_request", params={"limit": "1e3"}),
    Hostile("a status that is not one", "GET", "/v1/jobs", 422, "invalid_request", params={"status": "done\x00"}),
    Hostile("wait of 5,000 digits", "POST", "/v1/jobs", 422, "invalid_request", body=_job(),
            params={"wait": "9" * 5000}),
    # callback URLs (the deployed guard)
    bad_callback("IPv4-translated loopback", "https://[::ffff:0:127.0.0.1]/"),
    bad_callback("IPv4-translated metadata", "https://[::ffff:0:169.254.169.254]/latest/meta-data/"),
    bad_callback("IPv4-mapped loopback", "https://[::ffff:127.0.0.1]/"),
    bad_callback("NAT64 metadata", "https://[64:ff9b::a9fe:a9fe]/latest/meta-data/"),
    bad_callback("full-width loopback", "https://\uff11\uff12\uff17\u3002\uff10\u3002\uff10\u3002\uff11/"),
    bad_callback("loopback as one number", "https://2130706433/"),
    bad_callback("with credentials", "https://user:secret@example.com/hook"),
    bad_callback("port 0", "https://example.com:0/hook"),
    bad_callback("port 99999", "https://example.com:99999/hook"),
    bad_callback("port not a number", "https://example.com:http/hook"),
    bad_callback("ftp", "ftp://example.com/hook"),
    bad_callback("javascript", "javascript:alert(1)"),
    bad_callback("plain http", "http://example.com/hook"),
    bad_callback("a CRLF", "https://example.com/\r\nX-Injected: 1"),
    post_job("callback on a public name and odd port", _job(callback_url="https://hooks.example.com:8443/in"), 202),
    # registry prompts
    post_job("a prompt that does not exist", _job(prompt={"id": PROMPT}), 404, "not_found", code="prompt_not_found"),
    post_job("a prompt id that is not one", _job(prompt={"id": "pmpt_\u0000"}), 422, "invalid_request"),
    post_job("33 prompt variables", _job(prompt={"id": PROMPT, "variables": {f"v{i}": "x" for i in range(33)}}),
             422, "invalid_request"),
    post_job("a variable name with a null byte", _job(prompt={"id": PROMPT, "variables": {"a\u0000": "x"}}), 422,
             "invalid_request"),
    post_job("a variable value with a lone surrogate",
             f'{{"prompt": {{"id": "{PROMPT}", "variables": {{"a": "{SURROGATE}"}}}}}}'.encode(), 422,
             "invalid_request"),
    post_job("a prompt version of 5,000 digits", _job(prompt={"id": PROMPT, "version": int("9" * 4000)}), 422,
             "invalid_request"),
    Hostile("a prompt id of 3,000 characters", "GET", "/v1/prompts/pmpt_" + "x" * 3000, 422, "invalid_request"),
    Hostile("unicode in a prompt id", "GET", f"/v1/prompts/pmpt_{EMOJI}", 404, "not_found"),
    Hostile("a label with a slash: another path", "PUT", f"/v1/prompts/{PROMPT}/labels/a%2Fb", 404, "not_found",
            body=b'{"version": 1}'),
    Hostile("a label with a space", "PUT", f"/v1/prompts/{PROMPT}/labels/a%20b", 422, "invalid_request",
            body=b'{"version": 1}'),
    Hostile("weights of a huge version", "PUT", f"/v1/prompts/{PROMPT}/labels/production", 422, "invalid_request",
            body=json.dumps({"weights": {"9" * 5000: 1}}).encode()),
]

# Every route, by a method it does not take: 405 with Allow (GET on /v1/jobs/batch is a job named "batch": 404).
WRONG_METHODS = [
    Hostile("PUT /v1/jobs", "PUT", "/v1/jobs", 405, "invalid_request"),
    Hostile("DELETE /v1/jobs/batch: no job of that id", "DELETE", "/v1/jobs/batch", 404, "not_found"),
    Hostile("GET /v1/jobs/batch", "GET", "/v1/jobs/batch", 404, "not_found"),
    Hostile("PUT /v1/jobs/status", "PUT", "/v1/jobs/status", 405, "invalid_request"),
    Hostile("POST /v1/jobs/{id}", "POST", f"/v1/jobs/{JOB}", 405, "invalid_request"),
    Hostile("PATCH /v1/jobs/{id}", "PATCH", f"/v1/jobs/{JOB}", 405, "invalid_request"),
    Hostile("POST /v1/jobs/{id}/deliveries", "POST", f"/v1/jobs/{JOB}/deliveries", 405, "invalid_request"),
    Hostile("GET /v1/jobs/{id}/deliveries/redeliver", "GET", f"/v1/jobs/{JOB}/deliveries/redeliver", 405,
            "invalid_request"),
    Hostile("PATCH /v1/schedules", "PATCH", "/v1/schedules", 405, "invalid_request"),
    Hostile("POST /v1/schedules/{id}", "POST", f"/v1/schedules/{SCHEDULE}", 405, "invalid_request"),
    Hostile("PUT /v1/schedules/{id}", "PUT", f"/v1/schedules/{SCHEDULE}", 405, "invalid_request"),
    Hostile("GET /v1/schedules/{id}/run", "GET", f"/v1/schedules/{SCHEDULE}/run", 405, "invalid_request"),
    Hostile("POST /v1/webhook-secrets", "POST", "/v1/webhook-secrets", 405, "invalid_request"),
    Hostile("GET /v1/webhook-secrets/rotate", "GET", "/v1/webhook-secrets/rotate", 405, "invalid_request"),
    Hostile("PATCH /v1/prompts", "PATCH", "/v1/prompts", 405, "invalid_request"),
    Hostile("PUT /v1/prompts/{id}", "PUT", f"/v1/prompts/{PROMPT}", 405, "invalid_request"),
    Hostile("PUT /v1/prompts/{id}/versions", "PUT", f"/v1/prompts/{PROMPT}/versions", 405, "invalid_request"),
    Hostile("DELETE /v1/prompts/{id}/versions/{n}", "DELETE", f"/v1/prompts/{PROMPT}/versions/1", 405,
            "invalid_request"),
    Hostile("POST /v1/prompts/{id}/labels/{label}", "POST", f"/v1/prompts/{PROMPT}/labels/production", 405,
            "invalid_request"),
    Hostile("POST /healthz", "POST", "/healthz", 405, "invalid_request"),
    Hostile("OPTIONS /v1/jobs", "OPTIONS", "/v1/jobs", 405, "invalid_request"),
    *(Hostile(f"{method} {path}", method, path, 405, "invalid_request") for method, path in [
        ("GET", f"/v1/jobs/{JOB}/content"), ("POST", f"/v1/jobs/{JOB}/request"), ("GET", f"/v1/jobs/{JOB}/retry"),
        ("POST", f"/v1/jobs/{JOB}/stream"), ("PUT", "/v1/batches"), ("POST", f"/v1/batches/{BATCH}"),
        ("GET", f"/v1/batches/{BATCH}/cancel"), ("POST", f"/v1/batches/{BATCH}/results"),
        ("PUT", "/v1/collections"), ("POST", f"/v1/collections/{COLLECTION}"), ("POST", "/v1/usage"),
        ("PUT", f"/v1/collections/{COLLECTION}/documents"), ("POST", f"/v1/collections/{COLLECTION}/documents/doc_1"),
        ("GET", f"/v1/collections/{COLLECTION}/search"), ("POST", f"/v1/collections/{COLLECTION}/queries"),
        ("PUT", "/v1/webhook-endpoints"), ("POST", f"/v1/webhook-endpoints/{ENDPOINT}"), ("POST", "/console"),
        ("POST", "/console/jobs"), ("PUT", "/console/static/js/api.js")]),
    # OpenAI's face answers in OpenAI's error shape (its own tests check it): here, the status and the Allow
    *(Hostile(f"{method} {path}", method, path, 405) for method, path in [
        ("GET", "/v1/embeddings"), ("POST", "/v1/models"), ("POST", "/v1/models/fake-model"), ("GET", "/v1/responses"),
        ("POST", f"/v1/responses/{RESPONSE}"), ("GET", f"/v1/responses/{RESPONSE}/cancel"),
        ("POST", f"/v1/responses/{RESPONSE}/input_items")]),
]


@pytest.fixture(scope="module")
def client(moto_world: MotoWorld, fake_model: UvicornThread) -> Iterator[Any]:
    """One world for the whole corpus: no case needs another's absence, and a fresh one per case costs most of
    the time."""
    moto_world.reset()
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr("aijobs.api.routes.jobs.WAIT_LIMIT_S", 0)  # no worker runs here: a wait would only sleep
        with installed_services((moto_world.new_session(), moto_world.resources), fake_model), api_client() as client:
            yield client


@pytest.mark.parametrize("case", CORPUS + WRONG_METHODS, ids=lambda case: case.name)
def test_a_hostile_request_is_a_typed_4xx_or_a_legitimate_2xx(client: Any, case: Hostile) -> None:
    response = case.send(client)

    assert response.status_code == case.status, response.text[:300]
    assert response.headers["Cache-Control"] == "no-store" and response.headers["X-Content-Type-Options"] == "nosniff"
    if case.error is not None:
        error = response.json()["error"]
        assert error["type"] == case.error and error["request_id"] == response.headers["X-Request-Id"]
        assert case.code is None or error["code"] == case.code
        assert "xxxxxxxx" not in response.text and "kkkkkkkk" not in response.text  # input is never echoed
    if case.status == 405:
        assert response.headers["Allow"]


def test_the_corpus_is_at_least_forty_requests_and_tries_every_route_with_a_wrong_method() -> None:
    # Every route but the admin API's, which answers 404 to any key but the admin's (test_admin_api.py).
    paths = {route.path for route in create_app().state.api_routes if not route.path.startswith("/v1/admin/")}
    names = {JOB: "{job_id}", SCHEDULE: "{schedule_id}", PROMPT: "{prompt_id}", BATCH: "{batch_id}",
             COLLECTION: "{collection_id}", "/doc_1": "/{document_id}", RESPONSE: "{response_id}",
             ENDPOINT: "{endpoint_id}",
             "/versions/1": "/versions/{version}", "/labels/production": "/labels/{label}",
             "/v1/models/fake-model": "/v1/models/{model_id:path}", "/console/jobs": "/console/{page:path}",
             "/console/static/js/api.js": "/console/static/{name:path}"}
    tried = {functools.reduce(lambda path, name: path.replace(*name), names.items(), case.path)
             for case in WRONG_METHODS}

    assert len(CORPUS) >= 40
    assert paths <= tried


def test_the_437_kb_item_fails_in_its_own_slot_and_the_others_are_created(client: Any) -> None:
    body = json.dumps({"jobs": [{"input": "a"}, _largest_item(), {"input": "b"}]}, ensure_ascii=False).encode()
    assert 437 * 1000 <= len(body) < 4 * 1024 * 1024  # over a job's limit, within a batch request's

    response = client.post("/v1/jobs/batch", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 202
    first, big, last = response.json()["data"]
    assert (big["error"]["type"], big["error"]["code"]) == ("payload_too_large", "input_too_large")
    assert "id" not in big and first["status"] == last["status"] == "queued"
    assert all(client.get(f"/v1/jobs/{item['id']}").status_code == 200 for item in (first, last))
    assert EMOJI not in response.text
