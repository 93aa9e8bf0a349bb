"""Several model backends: the configuration is checked at cold start, models are routed by exact name then
pattern, and a retryable failure before any output falls back to the next model's backend.

The backends are real ``OpenAIProvider``s through the SDK: the fake model in-process (httpx2's ASGI transport) and
backends that answer an error status or refuse the connection (httpx2's mock transport); no sockets.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from openai import AsyncOpenAI
from pydantic import ValidationError

from aijobs import model_router as router_module
from aijobs.backends import ModelBackends, listed_backend, listed_models, single_backend
from aijobs.errors import ContentFiltered, ProviderError, ProviderRateLimited
from aijobs.local.fake_model import create_fake_model
from aijobs.model_router import ModelRouter
from aijobs.models.jobs import JobRequest, Usage
from aijobs.providers import Delta, ModelProvider, OpenAIProvider, StreamEnd, StreamEvent
from aijobs.settings import Settings

CONFIG: dict[str, Any] = {
    "backends": {"primary": {"base_url": "http://primary.test/v1"}, "second": {"base_url": "http://second.test/v1"},
                 "third": {}},
    "models": [{"model": "gpt-4o", "backend": "third"},
               {"model": "gpt-*", "backend": "primary", "fallback": ["llama-3", "gpt-4o"]},
               {"model": "g*", "backend": "second"},
               {"model": "llama-*", "backend": "second"}],
}


def _settings(value: str, **more: Any) -> Settings:
    return Settings(model_backends=value, default_model="gpt-4o-mini", **more)


# --- the configuration ---------------------------------------------------------------------------------------


def test_an_exact_name_wins_over_patterns_and_patterns_go_in_the_order_given() -> None:
    config = ModelBackends.model_validate(CONFIG)

    assert config.route("gpt-4o").backend == "third"  # type: ignore[union-attr]  # exact, though gpt-* is first
    assert config.route("gpt-4o-mini").backend == "primary"  # type: ignore[union-attr]  # gpt-* before g*
    assert config.route("gemma").backend == "second"  # type: ignore[union-attr]
    assert config.route("mistral") is None  # no route, no default_backend


def test_candidates_are_the_models_backend_then_each_fallback_models_own() -> None:
    config = ModelBackends.model_validate(CONFIG)

    assert config.candidates("gpt-4o-mini") == [("primary", "gpt-4o-mini"), ("second", "llama-3"),
                                                ("third", "gpt-4o")]
    assert config.candidates("llama-3") == [("second", "llama-3")]  # a route without fallback
    assert config.candidates("mistral") == []


def test_the_settings_read_the_json_and_empty_is_the_single_backend() -> None:
    assert _settings("").model_backends is None
    assert _settings(json.dumps(CONFIG)).model_backends == ModelBackends.model_validate(CONFIG)


@pytest.mark.parametrize(("value", "message"), [
    ("{not json", "AIJOBS_MODEL_BACKENDS is not JSON (line 1, column 2)"),
    ('{"backends": {}}', "backends: Dictionary should have at least 1 item"),
    ('{"backends": {"a": {}}, "models": [{"model": "x", "backend": "nope"}], "default_backend": "a"}',
     "routes name backends that are not in backends: nope"),
    ('{"backends": {"a": {}}, "models": [{"model": "x", "backend": "a", "fallback": ["y"]}]}',
     "fallback models of x match no route and there is no default_backend: y"),
    ('{"backends": {"a": {"base_url": "http://a", "key": "k"}}, "default_backend": "a"}',
     "backends.a.key: Extra inputs are not permitted"),
    ('{"backends": {"a": {"api_key_secret_arn": "my-secret"}}, "default_backend": "a"}',
     "backends.a.api_key_secret_arn: String should match pattern"),
    ('{"backends": {"a": {}}, "models": [{"model": "x", "backend": "a"}]}',
     "the default model (AIJOBS_DEFAULT_MODEL) matches no route, and there is no default_backend"),
])
def test_a_bad_configuration_stops_the_cold_start_saying_what_is_wrong(value: str, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        _settings(value)

    assert message in str(raised.value)


def test_a_key_written_in_the_configuration_is_refused_outside_the_local_stack_and_never_echoed() -> None:
    value = json.dumps({"backends": {"a": {"api_key": "sk-never-shown"}}, "default_backend": "a"})

    with pytest.raises(ValidationError) as raised:
        _settings(value, stage="prod")
    assert "backends a have an api_key written in the configuration" in str(raised.value)
    assert "sk-never-shown" not in str(raised.value)
    with pytest.raises(ValidationError) as bad:
        _settings(value.replace('"default_backend": "a"', '"default_backend": "b"'), stage="local")
    assert "sk-never-shown" not in str(bad.value)

    local = _settings(value, stage="local").model_backends
    assert local is not None and "sk-never-shown" not in repr(local)


def test_the_models_listed_are_the_exact_names_and_the_default_or_those_a_tenant_is_allowed() -> None:
    config = ModelBackends.model_validate(CONFIG)

    assert listed_models(config, default_model="gpt-4o-mini", allowed=None) == ["gpt-4o-mini", "gpt-4o"]
    assert listed_models(config, default_model="gpt-4o-mini", allowed=["llama-3", "mistral"]) == ["llama-3"]
    assert listed_models(single_backend(None), default_model="gpt-4o-mini", allowed=None) == ["gpt-4o-mini"]


def test_a_model_is_found_when_listed_or_matched_by_a_pattern_never_by_the_default_backends_catch_all() -> None:
    config = ModelBackends.model_validate(CONFIG)
    single = single_backend(None)

    assert listed_backend(config, "gpt-4.1", default_model="gpt-4o-mini", allowed=None) == "primary"
    assert listed_backend(config, "mistral", default_model="gpt-4o-mini", allowed=None) is None
    assert listed_backend(config, "gpt-4.1", default_model="gpt-4o-mini", allowed=["gpt-4o"]) is None
    assert listed_backend(single, "gpt-4o-mini", default_model="gpt-4o-mini", allowed=None) == "default"
    assert listed_backend(single, "anything", default_model="gpt-4o-mini", allowed=None) is None


# --- routing and fallback ------------------------------------------------------------------------------------


def _openai(transport: httpx2.AsyncBaseTransport) -> OpenAIProvider:
    return OpenAIProvider(lambda: AsyncOpenAI(api_key="k", base_url="http://model.test/v1", max_retries=0,
                                              http_client=httpx2.AsyncClient(transport=transport)))


def _answering(status: int, code: str | None = None) -> OpenAIProvider:
    """A backend that answers every call with ``status`` (OpenAI's error body), counting its calls."""
    def answer(request: httpx2.Request) -> httpx2.Response:
        calls.append(request)
        return httpx2.Response(status, json={"error": {"message": "no", "type": "x", "code": code}})
    calls: list[httpx2.Request] = []
    provider = _openai(httpx2.MockTransport(answer))
    provider.calls = calls  # type: ignore[attr-defined]
    return provider


def _unreachable() -> OpenAIProvider:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)
    return _openai(httpx2.MockTransport(refuse))


def _fake_model() -> OpenAIProvider:
    return _openai(httpx2.ASGITransport(app=create_fake_model()))


TWO = ModelBackends.model_validate({
    "backends": {"first": {}, "second": {}},
    "models": [{"model": "asked", "backend": "first", "fallback": ["fallback-model"]},
               {"model": "fallback-model", "backend": "second"}]})


def _complete(router: ModelRouter, prompt: str = "hello", model: str = "asked") -> Any:
    return asyncio.run(router.complete(JobRequest(input=prompt), model=model))


@pytest.mark.parametrize("first", [lambda: _answering(429), lambda: _answering(500), lambda: _answering(503),
                                   _unreachable], ids=["429", "500", "503", "connection refused"])
def test_a_retryable_failure_before_any_output_falls_back_and_the_completion_says_who_served_it(
        first: Any) -> None:
    router = ModelRouter(TWO, {"first": first(), "second": _fake_model()})

    completion = _complete(router)

    assert completion.text == "Echo: hello"
    assert (completion.backend, completion.fallback_model, completion.model) == ("second", "fallback-model",
                                                                                 "fallback-model")


def test_a_model_served_by_its_own_backend_records_it_and_no_fallback_model() -> None:
    router = ModelRouter(TWO, {"first": _fake_model(), "second": _answering(500)})

    completion = _complete(router)

    assert (completion.backend, completion.fallback_model, completion.model) == ("first", None, "asked")
    assert router._providers["second"].calls == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(("status", "code", "error"), [(400, None, ProviderError),
                                                      (400, "content_filter", ContentFiltered)])
def test_a_non_retryable_error_never_falls_back(status: int, code: str | None, error: type[Exception]) -> None:
    second = _answering(500)
    router = ModelRouter(TWO, {"first": _answering(status, code), "second": second})

    with pytest.raises(error) as raised:
        _complete(router)

    assert raised.value.retryable is False  # type: ignore[attr-defined]
    assert second.calls == []  # type: ignore[attr-defined]


def test_when_every_candidate_fails_retryably_the_last_error_is_raised() -> None:
    router = ModelRouter(TWO, {"first": _answering(500), "second": _answering(429)})

    with pytest.raises(ProviderRateLimited) as raised:
        _complete(router)

    assert raised.value.retryable and raised.value.code == "http_429"


def test_a_fallback_is_logged_with_the_backends_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    logged: list[tuple[str, dict[str, Any]]] = []
    counted: list[str] = []
    monkeypatch.setattr(router_module.logger, "info", lambda msg, extra: logged.append((msg, extra)))
    monkeypatch.setattr(router_module, "count", counted.append)
    router = ModelRouter(TWO, {"first": _answering(503), "second": _fake_model()})

    _complete(router)

    assert logged == [("model backend failed: falling back", {
        "from_backend": "first", "from_model": "asked", "to_backend": "second", "to_model": "fallback-model",
        "error_code": "http_503"})]
    assert counted == ["ModelFallbacks"]


class _Scripted(ModelProvider):  # type: ignore[misc]
    """A backend that streams ``deltas`` and then fails with ``error`` (or ends), counting its calls."""

    def __init__(self, deltas: list[str], error: ProviderError | None = None) -> None:
        self.deltas, self.error, self.calls = deltas, error, 0

    async def stream(self, request: JobRequest, *, model: str) -> AsyncIterator[StreamEvent]:
        self.calls += 1
        for text in self.deltas:
            yield Delta(text)
        if self.error is not None:
            raise self.error
        yield StreamEnd(usage=Usage(), model=model)


def test_a_failure_after_output_was_streamed_is_the_callers_and_never_falls_back() -> None:
    second = _Scripted(["never"])
    router = ModelRouter(TWO, {"first": _Scripted(["part"], ProviderError("cut", code="http_502", retryable=True)),
                               "second": second})
    parts: list[str] = []

    with pytest.raises(ProviderError) as raised:
        asyncio.run(router.complete(JobRequest(input="x"), model="asked", parts=parts))

    assert raised.value.code == "http_502" and parts == ["part"] and second.calls == 0


def test_a_model_no_backend_serves_fails_the_job_without_a_call() -> None:
    router = ModelRouter(TWO, {"first": _Scripted([]), "second": _Scripted([])})

    with pytest.raises(ProviderError) as raised:
        _complete(router, model="unknown")

    assert (raised.value.code, raised.value.retryable) == ("model_not_routed", False)


def test_the_single_backend_serves_every_model_without_fallback() -> None:
    router = ModelRouter(single_backend(None), {"default": _fake_model()})

    completion = _complete(router, model="any-model")

    assert (completion.backend, completion.fallback_model, completion.model) == ("default", None, "any-model")


def test_any_call_is_routed_through_the_one_helper() -> None:
    """What a new provider method (embeddings, images) does in one line: the helper falls back for it too."""
    router = ModelRouter(TWO, {"first": _Scripted([]), "second": _Scripted([])})

    async def call(provider: ModelProvider, model: str) -> str:
        if provider is router._providers["first"]:
            raise ProviderError("busy", code="http_503", retryable=True)
        return f"embedded by {model}"

    served = asyncio.run(router._with_fallback("asked", call))

    assert (served.value, served.backend, served.fell_back) == ("embedded by fallback-model", "second", True)


def test_any_name_goes_to_the_default_backend_however_long() -> None:
    route = single_backend(None).route("m" * 1000)

    assert route is not None and route.backend == "default" and route.fallback == []


def test_embeddings_and_images_are_routed_with_fallback_and_say_who_made_them() -> None:
    router = ModelRouter(TWO, {"first": _answering(503), "second": _fake_model()})

    embedded = asyncio.run(router.embed(["a", "b"], model="asked", dimensions=8))
    drawn = asyncio.run(router.images("a red square", model="asked", size="8x8", n=1))

    assert len(embedded.vectors) == 2 and len(embedded.vectors[0]) == 8
    assert (embedded.backend, embedded.fallback_model) == ("second", "fallback-model")
    assert len(drawn.pngs) == 1 and (drawn.backend, drawn.fallback_model) == ("second", "fallback-model")
    assert len(router._providers["first"].calls) == 2  # type: ignore[attr-defined]  # each tried its own first
