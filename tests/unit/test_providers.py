"""Provider errors are classified once: retryable ones go back to the queue, the rest fail the job."""

from __future__ import annotations

import httpx2
import openai
import pytest

from aijobs.models.jobs import JobRequest, Message
from aijobs.providers import classify_openai_error, to_messages

REQUEST = httpx2.Request("POST", "http://model.invalid/v1/chat/completions")


def _status_error(status: int, *, headers: dict[str, str] | None = None, body: object = None) -> Exception:
    response = httpx2.Response(status, headers=headers or {}, request=REQUEST)
    fallback = openai.InternalServerError if status >= 500 else openai.APIStatusError
    cls = {429: openai.RateLimitError, 400: openai.BadRequestError, 401: openai.AuthenticationError,
           404: openai.NotFoundError}.get(status, fallback)
    return cls("provider said something about the prompt", response=response, body=body)


@pytest.mark.parametrize(("exc", "type_", "retryable"), [
    (_status_error(429), "provider_rate_limited", True),
    (_status_error(500), "provider_error", True),
    (_status_error(503), "provider_error", True),
    (_status_error(400), "provider_error", False),
    (_status_error(401), "provider_error", False),
    (_status_error(404), "provider_error", False),
    (_status_error(400, body={"code": "content_filter"}), "content_filtered", False),
    (openai.APITimeoutError(request=REQUEST), "provider_timeout", True),
    (openai.APIConnectionError(request=REQUEST), "provider_error", True),
])
def test_provider_errors_are_classified(exc: Exception, type_: str, retryable: bool) -> None:
    error = classify_openai_error(exc)
    assert (error.type, error.retryable) == (type_, retryable)
    assert "prompt" not in error.message  # the provider's own words are not copied


def test_rate_limit_carries_retry_after() -> None:
    assert classify_openai_error(_status_error(429, headers={"retry-after": "7"})).retry_after == 7


def test_instructions_become_a_system_message_before_the_input() -> None:
    request = JobRequest(input=[Message(role="user", content="hi")], instructions="be brief")
    assert to_messages(request) == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert to_messages(JobRequest(input="hello")) == [{"role": "user", "content": "hello"}]
