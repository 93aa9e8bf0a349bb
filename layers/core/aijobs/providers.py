"""Model providers: OpenAI or any OpenAI-compatible server through the ``openai`` SDK.

Every call streams: ``stream()`` yields the output as it is made and ends with the usage and the model that
answered; ``complete()`` folds a stream into one completion. Closing a stream early (``aclose()``) closes its HTTP
response, so the provider stops generating.

Provider failures are classified into the error taxonomy here, once: retryable ones (429, 5xx, timeouts,
connection errors) go back to the queue; the others fail the job at once.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from aijobs.errors import ContentFiltered, ProviderError, ProviderRateLimited, ProviderTimeout
from aijobs.models.jobs import JobRequest, Usage
from aijobs.retry import retry_after_s

if TYPE_CHECKING:
    import ssl

    from openai import AsyncOpenAI


@dataclass(frozen=True)
class Delta:
    """A piece of output, in order."""

    text: str


@dataclass(frozen=True)
class StreamEnd:
    """The last event of a stream: what the call used, which model answered (a provider may resolve an alias to a
    dated snapshot), and why it stopped (``stop``, ``length`` at max_output_tokens). Through several backends
    (aijobs/backends.py): which backend answered, and the fallback model it was asked for when not the job's."""

    usage: Usage
    model: str
    finish_reason: str | None = None
    backend: str | None = None
    fallback_model: str | None = None


StreamEvent = Delta | StreamEnd


@dataclass(frozen=True)
class Completion:
    text: str
    usage: Usage
    model: str
    finish_reason: str | None = None
    backend: str | None = None  # as StreamEnd's
    fallback_model: str | None = None


@dataclass(frozen=True)
class Embeddings:
    """One embeddings call's vectors (in the order of its texts), usage, and the model that answered."""

    vectors: list[list[float]]
    usage: Usage
    model: str
    backend: str | None = None  # as StreamEnd's
    fallback_model: str | None = None


@dataclass(frozen=True)
class Images:
    """One image call's PNGs, and its usage (gpt-image-1 reports tokens; other models none: zeros)."""

    pngs: list[bytes]
    usage: Usage
    model: str
    backend: str | None = None  # as StreamEnd's
    fallback_model: str | None = None


class ModelProvider(ABC):
    async def embed(self, texts: list[str], *, model: str, dimensions: int | None) -> Embeddings:
        """The texts' embedding vectors, in one call; raises ``ProviderError`` on failure."""
        raise ProviderError("this model provider makes no embeddings", code="unsupported_kind")

    async def images(self, prompt: str, *, model: str, size: str | None, n: int) -> Images:
        """``n`` images of ``prompt``, as PNG bytes, in one call; raises ``ProviderError`` on failure."""
        raise ProviderError("this model provider makes no images", code="unsupported_kind")

    @abstractmethod
    def stream(self, request: JobRequest, *, model: str) -> AsyncIterator[StreamEvent]:
        """The output as it is made, then one ``StreamEnd``; raises ``ProviderError`` on failure."""

    async def complete(self, request: JobRequest, *, model: str,
                       parts: list[str] | None = None) -> Completion:
        """The whole output of one call, within the request's ``timeout_s``; ``parts`` (when given) receives each
        piece as it arrives, for a caller that shows the output so far."""
        parts = [] if parts is None else parts
        end: StreamEnd | None = None
        stream = self.stream(request, model=model)
        try:
            async with asyncio.timeout(request.timeout_s):
                async for event in stream:
                    if isinstance(event, Delta):
                        parts.append(event.text)
                    else:
                        end = event
        except TimeoutError:
            raise ProviderTimeout("the model provider did not answer in time", retryable=True) from None
        finally:
            await stream.aclose()  # type: ignore[attr-defined]  # an async generator: closes the HTTP response
        if end is None:
            raise ProviderError("the model provider's answer ended early", code="bad_response", retryable=True)
        return Completion(text="".join(parts), usage=end.usage, model=end.model, finish_reason=end.finish_reason,
                          backend=end.backend, fallback_model=end.fallback_model)


# An answer job's instructions: its sources are numbered from 1, and its answer cites them by number
# (AnswerOutput reads the numbers back as citations).
ANSWER_INSTRUCTIONS = (
    "Answer the question from the numbered sources below, and only from them. After each statement, cite the "
    "sources it rests on by their numbers in square brackets, like [1] or [1, 2]. If the sources do not answer the "
    "question, say so.")


def to_messages(request: JobRequest) -> list[dict[str, str]]:
    """A text job's prompt as chat messages; an answer job's, its sources and question; an embedding or image job's
    input as one user message a text (what its tokens are counted as)."""
    if request.kind == "answer" and request.collection is not None:
        sources = "\n\n".join(f"[{n}] {source.text}" for n, source in enumerate(request.collection.sources, 1))
        return [{"role": "system", "content": ANSWER_INSTRUCTIONS},
                {"role": "user", "content": f"Sources:\n\n{sources or '(none)'}\n\nQuestion: {request.input}"}]
    messages = [{"role": "system", "content": request.instructions}] if request.instructions else []
    if request.input is None:  # a job's request always has one once its prompt is resolved (aijobs/prompts.py)
        return messages
    return messages + request.input_messages


@lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    """The TLS context the SDK's HTTP client makes for itself (httpx2's default: SSL_CERT_FILE and SSL_CERT_DIR
    honoured), made once per process: each client made its own, about 20 ms of CPU, and a client lives as long as
    its event loop (in the local stack, one batch)."""
    import httpx2  # the openai SDK's HTTP client

    return httpx2.create_ssl_context()


def openai_client(*, api_key: str, base_url: str | None) -> AsyncOpenAI:
    """An ``AsyncOpenAI`` with the SDK's own retries off (the queue retries) and the process's TLS context."""
    from openai import AsyncOpenAI, DefaultAsyncHttpxClient

    return AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0,
                       http_client=DefaultAsyncHttpxClient(verify=_tls_context()))


def preload_model_client() -> None:
    """Import what a process's first model call would (the SDK and its HTTP client's transports, about 0.8 s of CPU),
    by making a client and dropping it unused: before a SnapStart snapshot, and as the local stack starts."""
    openai_client(api_key="preload", base_url=None)


class OpenAIProvider(ModelProvider):
    """Streamed chat completions through ``AsyncOpenAI``; the SDK's own retries are off, the queue retries."""

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

    async def stream(self, request: JobRequest, *, model: str) -> AsyncIterator[StreamEvent]:
        import openai

        params: dict[str, Any] = {"model": model, "messages": to_messages(request), "timeout": request.timeout_s,
                                  "stream": True, "stream_options": {"include_usage": True}}
        if request.max_output_tokens is not None:
            params["max_completion_tokens"] = request.max_output_tokens
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.response_format is not None:
            params["response_format"] = request.response_format.model_dump(exclude_none=True)
        usage, answered_by, finish = Usage(), model, None
        try:
            # The chunks as JSON, read from the raw stream: the SDK's typed chunk objects took three quarters of a
            # long answer's CPU (37 ms against 10 for 200 tokens), in a process that streams its batch's jobs at once.
            async with self._client().chat.completions.with_streaming_response.create(**params) as response:
                async for chunk in _sse_chunks(response):
                    answered_by = str(chunk.get("model") or answered_by)
                    if isinstance(reported := chunk.get("usage"), dict):
                        usage = Usage(input_tokens=int(reported.get("prompt_tokens") or 0),
                                      output_tokens=int(reported.get("completion_tokens") or 0),
                                      total_tokens=int(reported.get("total_tokens") or 0))
                    if isinstance(choices := chunk.get("choices"), list) and choices \
                            and isinstance(choice := choices[0], dict):
                        finish = choice.get("finish_reason") or finish
                        if isinstance(delta := choice.get("delta"), dict) and (text := delta.get("content")):
                            yield Delta(str(text))
        except openai.OpenAIError as exc:
            raise classify_openai_error(exc) from None
        except (ValueError, TypeError):  # a chunk that is not JSON, or numbers that are not
            raise ProviderError("the model provider's answer could not be used", code="bad_response",
                                retryable=True) from None
        if finish == "content_filter":
            raise ContentFiltered("the provider's content filter stopped the output", code="content_filter")
        yield StreamEnd(usage=usage, model=answered_by, finish_reason=finish)

    async def embed(self, texts: list[str], *, model: str, dimensions: int | None) -> Embeddings:
        import openai

        # As JSON numbers (the SDK would ask for base64 float32 and widen them, adding digits the model never made),
        # read from the raw answer: the SDK's typed objects cost seconds for 1,000 vectors' floats.
        params: dict[str, Any] = {"model": model, "input": texts, "encoding_format": "float"}
        if dimensions is not None:
            params["dimensions"] = dimensions
        try:
            raw = await self._client().embeddings.with_raw_response.create(**params)
            answer = raw.http_response.json()
            data = sorted(answer["data"], key=lambda item: item["index"])
            vectors = [[float(v) for v in item["embedding"]] for item in data]
            tokens = int((answer.get("usage") or {}).get("prompt_tokens") or 0)
        except openai.OpenAIError as exc:
            raise classify_openai_error(exc) from None
        except (ValueError, KeyError, TypeError):
            raise ProviderError("the model provider's answer could not be used", code="bad_response",
                                retryable=True) from None
        if len(vectors) != len(texts):
            raise ProviderError("the model provider's answer ended early", code="bad_response", retryable=True)
        return Embeddings(vectors=vectors, model=str(answer.get("model") or model),
                          usage=Usage(input_tokens=tokens, total_tokens=tokens))

    async def images(self, prompt: str, *, model: str, size: str | None, n: int) -> Images:
        import base64
        import binascii

        import openai

        params: dict[str, Any] = {"model": model, "prompt": prompt, "n": n}
        if size is not None:
            params["size"] = size
        if not model.startswith("gpt-image"):  # gpt-image models always answer base64, and refuse the parameter
            params["response_format"] = "b64_json"
        try:
            answer = await self._client().images.generate(**params)
        except openai.OpenAIError as exc:
            raise classify_openai_error(exc) from None
        try:
            pngs = [base64.b64decode(item.b64_json or "", validate=True) for item in answer.data or []]
        except (binascii.Error, ValueError):
            pngs = []
        if len(pngs) != n or not all(png.startswith(b"\x89PNG") for png in pngs):
            raise ProviderError("the model provider's answer held no PNG images", code="bad_response", retryable=True)
        usage = Usage()
        if answer.usage is not None:
            usage = Usage(input_tokens=answer.usage.input_tokens, output_tokens=answer.usage.output_tokens,
                          total_tokens=answer.usage.total_tokens)
        return Images(pngs=pngs, usage=usage, model=model)


async def _sse_chunks(response: Any) -> AsyncIterator[dict[str, Any]]:
    """The JSON objects of a chat completion's server-sent events (``response``: the SDK's streamed response), up to
    ``[DONE]``; the rest of the body is read, so that its connection can be used again. An event that carries an
    ``error`` raises the SDK's ``APIError``, as the SDK's own stream does; the SDK's timeout and connection errors
    stand for the transport's."""
    import httpx2
    import openai

    request = response.http_response.request
    data: list[str] = []
    done = False
    try:
        async for line in response.iter_lines():
            if line.startswith("data:"):
                data.append(line[6:] if line.startswith("data: ") else line[5:])
            if line or not data:
                continue  # an event ends at a blank line; other fields (event:, id:) and comments are not used
            payload, data = "\n".join(data), []
            if done or payload.startswith("[DONE]"):
                done = True
                continue
            chunk = json.loads(payload)
            if not isinstance(chunk, dict):
                raise TypeError("a chunk is not an object")
            if error := chunk.get("error"):
                message = error.get("message") if isinstance(error, dict) else None
                raise openai.APIError(message if isinstance(message, str) and message
                                      else "An error occurred during streaming", request=request, body=error)
            yield chunk
    except httpx2.TimeoutException:
        raise openai.APITimeoutError(request=request) from None
    except httpx2.TransportError:
        raise openai.APIConnectionError(request=request) from None


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
        retry_after = retry_after_s(exc.response.headers)
        if status == 429:
            return ProviderRateLimited("the model provider is rate limiting", code=body_code or "http_429",
                                       retryable=True, retry_after=retry_after)
        if body_code == "content_filter":
            return ContentFiltered("the provider's content filter refused the request", code=body_code)
        retryable = status >= 500 or status in (408, 409)
        return ProviderError(f"the model provider answered HTTP {status}", code=body_code or f"http_{status}",
                             retryable=retryable, retry_after=retry_after)
    return ProviderError("the model provider's answer could not be used", code="bad_response")
