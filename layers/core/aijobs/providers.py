"""Model providers: OpenAI or any OpenAI-compatible server through the ``openai`` SDK.

Provider failures are classified into the error taxonomy here, once: retryable ones (429, 5xx, timeouts,
connection errors) go back to the queue; the others fail the job at once.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from aijobs.errors import ContentFiltered, ProviderError, ProviderRateLimited, ProviderTimeout
from aijobs.models import JobRequest, Usage

if TYPE_CHECKING:
    from openai import AsyncOpenAI


@dataclass(frozen=True)
class Completion:
    text: str
    usage: Usage


class ModelProvider(Protocol):
    async def complete(self, request: JobRequest, *, model: str) -> Completion: ...


def to_messages(request: JobRequest) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": request.instructions}] if request.instructions else []
    if isinstance(request.input, str):
        return [*messages, {"role": "user", "content": request.input}]
    return messages + [m.model_dump() for m in request.input]


class OpenAIProvider:
    """Chat completions through ``AsyncOpenAI``; the SDK's own retries are off, the queue retries."""

    def __init__(self, client_factory: Callable[[], AsyncOpenAI]) -> None:
        # An async HTTP client belongs to one event loop: one client per loop (one per process in Lambda,
        # where the loop lives as long as the process).
        self._factory = client_factory
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncOpenAI] = (
            weakref.WeakKeyDictionary())

    def _client(self) -> AsyncOpenAI:
        loop = asyncio.get_running_loop()
        if loop not in self._clients:
            self._clients[loop] = self._factory()
        return self._clients[loop]

    async def complete(self, request: JobRequest, *, model: str) -> Completion:
        import openai

        params: dict[str, Any] = {"model": model, "messages": to_messages(request),
                                  "timeout": request.timeout_s}
        if request.max_output_tokens is not None:
            params["max_completion_tokens"] = request.max_output_tokens
        if request.temperature is not None:
            params["temperature"] = request.temperature
        try:
            answer = await self._client().chat.completions.create(**params)
        except openai.OpenAIError as exc:
            raise classify_openai_error(exc) from None
        choice = answer.choices[0] if answer.choices else None
        if choice is not None and choice.finish_reason == "content_filter":
            raise ContentFiltered("the provider's content filter stopped the output", code="content_filter")
        usage = answer.usage
        return Completion(
            text=(choice.message.content or "") if choice else "",
            usage=Usage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens,
                        total_tokens=usage.total_tokens) if usage else Usage(),
        )


def _retry_after(exc: Any) -> int | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return max(0, int(float(value))) if value else None
    except ValueError:
        return None


def classify_openai_error(exc: Exception) -> ProviderError:
    """Map an ``openai`` exception to the taxonomy. Provider messages are not copied: they may quote input."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return ProviderTimeout("the model provider did not answer in time", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError("the model provider could not be reached", code="connection_error",
                             retryable=True)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        body_code = exc.code if isinstance(exc.code, str) else None
        if status == 429:
            return ProviderRateLimited("the model provider is rate limiting", code=body_code or "http_429",
                                       retryable=True, retry_after=_retry_after(exc))
        if body_code == "content_filter":
            return ContentFiltered("the provider's content filter refused the request", code=body_code)
        retryable = status >= 500 or status in (408, 409)
        return ProviderError(f"the model provider answered HTTP {status}", code=body_code or f"http_{status}",
                             retryable=retryable, retry_after=_retry_after(exc))
    return ProviderError("the model provider's answer could not be used", code="bad_response")
