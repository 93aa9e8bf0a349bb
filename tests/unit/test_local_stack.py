"""The local stack reads template.yaml, and the fake model follows its directives."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import ClientDisconnect

from aijobs.local.fake_model import _directives, _reply_words, create_fake_model
from aijobs.local.server_process import UvicornThread
from aijobs.local.stack import LocalStack, banner, parse_dev_keys, poller_concurrency
from aijobs.local.template import ROOT, LocalResources, function_environment, sqs_sources


def test_function_environment_resolves_refs_to_the_local_resources(template: dict[str, Any]) -> None:
    created = LocalResources(refs={"JobsTable": "t-jobs", "IdempotencyTable": "t-idem", "JobsQueue": "http://q"})
    env = function_environment(template, created, "WorkerFunction")
    assert env["AIJOBS_JOBS_TABLE"] == "t-jobs"
    assert env["AIJOBS_JOBS_QUEUE_URL"] == "http://q"
    assert env["AIJOBS_DEFAULT_MODEL"] == "gpt-4o-mini"  # the parameter's default
    assert "AIJOBS_MODEL_API_KEY_SECRET_ARN" not in env  # empty by default


def test_dev_keys_parse_tenant_key_pairs() -> None:
    assert parse_dev_keys("a:ka, b:kb") == {"ka": "a", "kb": "b"}
    generated = parse_dev_keys(None)
    assert list(generated.values()) == ["dev"]


def test_malformed_dev_keys_stop_the_stack() -> None:
    with pytest.raises(SystemExit):
        parse_dev_keys("no-colon")


def test_fake_model_directives() -> None:
    assert _directives("x [[delay_ms=20]] [[fail=429,times=2]] [[tokens=5]] [[token_ms=40]]") == {
        "delay_ms": "20", "fail": "429,times=2", "tokens": "5", "token_ms": "40"}


def test_fake_model_reply_echoes_the_input_and_honours_lengths() -> None:
    assert _reply_words("hello there", None, None) == (["Echo:", "hello", "there"], "stop")
    assert len(_reply_words("hi", 50, None)[0]) == 50
    assert _reply_words("a b c d", None, 2) == (["Echo:", "a"], "length")


def test_the_local_stack_polls_every_sqs_event_source_of_the_template(template: dict[str, Any]) -> None:
    sources = {(s.function, s.queue) for s in sqs_sources(template)}
    assert {("WorkerFunction", "JobsQueue"), ("WebhookFunction", "DeliveriesQueue")} <= sources
    for source in sqs_sources(template):
        app = (ROOT / "functions" / source.code_dir / "app.py").read_text()
        assert f"def {source.handler}(" in app and source.batch_size >= 10


def test_the_local_stack_runs_as_many_deliveries_consumers_as_lambda_may(template: dict[str, Any]) -> None:
    sources = {s.function: s for s in sqs_sources(template)}
    most = template["Parameters"]["WebhookMaximumConcurrency"]["Default"]
    assert poller_concurrency(sources["WebhookFunction"], {}) == sources["WebhookFunction"].max_concurrency == most
    assert poller_concurrency(sources["WorkerFunction"], {}) == 2  # each job calls the model: kept small here
    assert poller_concurrency(sources["WorkerFunction"], {"AIJOBS_LOCAL_WORKER_CONCURRENCY": "4"}) == 4


class _RecordingSleep:
    """The fake model's sleep in these tests: it notes what the server asked to wait, and waits for nothing."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        await asyncio.sleep(0)


def _call(app: FastAPI, prompt: str, **body: Any) -> httpx.Response:
    async def post() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://model.test") as client:
            return await client.post("/v1/chat/completions", json={
                "model": "fake-model", "messages": [{"role": "user", "content": prompt}], **body})
    return asyncio.run(post())


def _stats(app: FastAPI, prompt: str) -> dict[str, int]:
    async def get() -> dict[str, int]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://model.test") as client:
            return dict((await client.get("/_stats", params={"prompt": prompt})).json())
    return asyncio.run(get())


def _chunks(response: httpx.Response) -> list[Any]:
    return [json.loads(line[6:]) if line != "data: [DONE]" else "[DONE]"
            for line in response.text.split("\n\n") if line.startswith("data: ")]


def test_token_ms_streams_the_answer_token_by_token_with_the_pause_between_tokens() -> None:
    sleep = _RecordingSleep()
    app = create_fake_model(sleep=sleep)

    response = _call(app, "pace me [[token_ms=40]] [[tokens=6]]", stream=True,
                     stream_options={"include_usage": True})

    *chunks, done = _chunks(response)
    role, *tokens, finish, usage = chunks
    assert done == "[DONE]" and sleep.asked == [0.04] * 5  # between 6 tokens, nothing before the first
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"]["content"] for c in tokens] == [
        "Echo:", " pace", " me", " [[token_ms=40]]", " [[tokens=6]]", " lorem"]
    assert finish["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 6
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == role["id"] for c in chunks)
    assert all(c["usage"] is None for c in chunks[:-1])  # as OpenAI sends them when usage is asked for
    assert _stats(app, "pace me [[token_ms=40]] [[tokens=6]]") == {
        "total": 1, "aborted": 0, "max_in_flight": 1, "prompt": 1, "prompt_aborted": 0}


def test_token_ms_without_streaming_takes_as_long_in_one_answer() -> None:
    sleep = _RecordingSleep()

    response = _call(create_fake_model(sleep=sleep), "whole [[token_ms=40]] [[tokens=6]]")

    assert response.json()["choices"][0]["message"]["content"].split()[0] == "Echo:"
    assert sleep.asked == [pytest.approx(0.2)]


def test_without_token_ms_the_stream_does_not_pause() -> None:
    sleep = _RecordingSleep()

    response = _call(create_fake_model(sleep=sleep), "quick one", stream=True)

    assert len(_chunks(response)) == 1 + 3 + 1 + 1 and sleep.asked == []  # role, 3 tokens, finish, [DONE]
    assert "usage" not in _chunks(response)[0]


@pytest.mark.parametrize("value", ["-1", "10001", "fast", "1.5"])
def test_a_token_ms_out_of_bounds_is_a_400_that_does_not_echo_it(value: str) -> None:
    sleep = _RecordingSleep()

    response = _call(create_fake_model(sleep=sleep), f"x [[token_ms={value}]]", stream=True)

    assert response.status_code == 400 and sleep.asked == []
    assert response.json()["error"]["message"] == "token_ms must be a whole number from 0 to 10000"


def test_the_banner_names_the_fake_models_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    stack = LocalStack(env={}, api_keys={"aj_dev_k": "dev"}, fake_model=UvicornThread(FastAPI(), 43210))

    text = banner(url="http://127.0.0.1:8000", stack=stack)

    assert "model: the fake model at http://127.0.0.1:43210\n" in text and "dev=aj_dev_k" in text


def test_the_banner_names_a_real_models_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    monkeypatch.setenv("AIJOBS_MODEL_BASE_URL", "https://api.openai.com/v1")

    text = banner(url="http://127.0.0.1:8000", stack=LocalStack(env={}, api_keys={"aj_dev_k": "dev"}))

    assert "model: https://api.openai.com/v1\n" in text


@pytest.mark.parametrize("admin_key", ["", "aj_admin_local_0123456789"])
def test_the_banner_says_whether_the_admin_api_is_on_and_never_prints_its_key(
        monkeypatch: pytest.MonkeyPatch, admin_key: str) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    monkeypatch.setenv("AIJOBS_ADMIN_KEY", admin_key)

    text = banner(url="http://127.0.0.1:8000", stack=LocalStack(env={}, api_keys={"aj_dev_k": "dev"},
                                                               fake_model=UvicornThread(FastAPI(), 43210)))

    if admin_key:
        assert "Admin API (/v1/admin/): on" in text and admin_key not in text
        assert "http://127.0.0.1:8000/v1/admin/tenants/acme/keys" in text and "$AIJOBS_ADMIN_KEY" in text
    else:
        assert "Admin API (/v1/admin/): off; set AIJOBS_ADMIN_KEY" in text


def test_a_stream_whose_client_is_gone_at_a_send_is_aborted() -> None:
    """An ASGI 2.4 server raises OSError from ``send`` once the client is gone: the generator, left at a ``yield``,
    is closed at once and counts the abort (no token_ms: it never waits in a sleep to be cancelled in)."""
    app = create_fake_model(sleep=_RecordingSleep())
    request = json.dumps({"model": "fake-model", "stream": True,
                          "messages": [{"role": "user", "content": "gone at a send"}]}).encode()
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
             "query_string": b"", "headers": [(b"content-type", b"application/json")], "server": ("model.test", 80)}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": request, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if len(sent) == 3:  # the headers and two chunks went out
            raise OSError("client gone")
        sent.append(message)

    async def serve() -> Counter[str]:
        with pytest.raises(ClientDisconnect):
            await app(scope, receive, send)
        return Counter(app.state.calls)

    calls = asyncio.run(serve())

    assert (calls["prompt:gone at a send"], calls["aborted:gone at a send"], calls["aborted"]) == (1, 1, 1)


def test_the_local_backends_route_the_down_model_to_the_down_backend_with_a_fallback_to_the_fake_model(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from aijobs.local.stack import backends_line, local_backends
    from aijobs.settings import Settings

    value = json.dumps(local_backends("http://127.0.0.1:43210", down_port=43211))
    backends = Settings(stage="local", default_model="fake-model", model_backends=value).model_backends

    assert backends is not None
    assert backends.candidates("fake-model-down") == [("fake-down", "fake-model-down"), ("fake", "fake-model")]
    assert backends.backends["fake-down"].base_url == "http://127.0.0.1:43211/v1"
    assert backends.candidates("any-other") == [("fake", "any-other")]
    monkeypatch.setenv("AIJOBS_MODEL_BACKENDS", value)
    assert '"model": "fake-model-down" falls back to fake-model' in backends_line()
    monkeypatch.setenv("AIJOBS_MODEL_BACKENDS", "")  # the developer's own (or none): no line about the local ones
    assert backends_line() == ""
