"""The ``ModelProvider`` the worker calls when there are several backends: ``ModelRouter`` (aijobs/backends.py has its
configuration, and says how models are routed and fall back)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

from aijobs.backends import ModelBackends
from aijobs.errors import ProviderError
from aijobs.models.jobs import JobRequest
from aijobs.observability import count, logger
from aijobs.providers import Embeddings, Images, ModelProvider, StreamEnd, StreamEvent


@dataclass(frozen=True)
class Served[T]:
    """What a routed call answered, and who answered it: ``fell_back`` when it was not the asked model's backend."""

    value: T
    backend: str
    model: str
    fell_back: bool


class ModelRouter(ModelProvider):
    """Routes each call to its model's backend, and falls back to the next candidate while the failure is
    retryable and nothing was output yet; a non-retryable error (400, a content filter) is the job's at once.

    ``providers`` holds one ``ModelProvider`` per backend name (``OpenAIProvider`` in AWS, fakes in tests).
    """

    def __init__(self, backends: ModelBackends, providers: Mapping[str, ModelProvider]) -> None:
        missing = set(backends.backends) - set(providers)
        if missing:
            raise ValueError(f"no provider for backends {sorted(missing)}")
        self.backends = backends
        self._providers = dict(providers)

    async def _with_fallback[T](self, model: str, call: Callable[[ModelProvider, str], Awaitable[T]]) -> Served[T]:
        """``call(provider, model)`` on the model's backend, then on each fallback's while they fail retryably; the
        last error when every one did. Every model call is routed through here: a new provider method is one line,
        as ``embed`` and ``images`` are (``_tagged`` when its result carries ``backend`` and ``fallback_model``, else
        ``.value``)::

            async def moderate(self, text: str, *, model: str) -> Moderation:
                return (await self._with_fallback(model, lambda p, m: p.moderate(text, model=m))).value

        A call that streams must fail here only before its first output (``stream`` below reads the first event
        inside ``call``): after that, a failure is the caller's.
        """
        candidates = self.backends.candidates(model)
        if not candidates:
            raise ProviderError("no model backend is configured for this job's model", code="model_not_routed")
        last: ProviderError | None = None
        for index, (backend, candidate) in enumerate(candidates):
            if last is not None:
                logger.info("model backend failed: falling back", extra={
                    "from_backend": candidates[index - 1][0], "from_model": candidates[index - 1][1],
                    "to_backend": backend, "to_model": candidate, "error_code": last.code})
                count("ModelFallbacks")
            try:
                value = await call(self._providers[backend], candidate)
            except ProviderError as exc:
                if not exc.retryable:
                    raise
                last = exc
                continue
            return Served(value=value, backend=backend, model=candidate, fell_back=index > 0)
        assert last is not None
        raise last

    def stream(self, request: JobRequest, *, model: str) -> AsyncIterator[StreamEvent]:
        return self._stream(request, model=model)

    async def embed(self, texts: list[str], *, model: str, dimensions: int | None) -> Embeddings:
        return _tagged(await self._with_fallback(model, lambda p, m: p.embed(texts, model=m, dimensions=dimensions)))

    async def images(self, prompt: str, *, model: str, size: str | None, n: int) -> Images:
        return _tagged(await self._with_fallback(model, lambda p, m: p.images(prompt, model=m, size=size, n=n)))

    async def _stream(self, request: JobRequest, *, model: str) -> AsyncIterator[StreamEvent]:
        """The output of the first backend that answers; its ``StreamEnd`` says which backend, and which fallback
        model when it was not the asked one."""
        served = await self._with_fallback(model, lambda provider, m: _first_event(provider.stream(request, model=m)))
        event, rest = served.value
        try:
            while True:
                if isinstance(event, StreamEnd):
                    event = _tagged(Served(event, served.backend, served.model, served.fell_back))
                yield event
                try:
                    event = await anext(rest)
                except StopAsyncIteration:
                    return
        finally:
            await rest.aclose()  # type: ignore[attr-defined]  # an async generator: closes the HTTP response


def _tagged[R: (StreamEnd, Embeddings, Images)](served: Served[R]) -> R:
    """A call's result, saying which backend answered, and which fallback model when not the asked one."""
    return dataclasses.replace(served.value, backend=served.backend,
                               fallback_model=served.model if served.fell_back else None)


async def _first_event(stream: AsyncIterator[StreamEvent]) -> tuple[StreamEvent, AsyncIterator[StreamEvent]]:
    """A stream's first event and the stream: a backend's failure before it is one the router may fall back on."""
    try:
        return await anext(stream), stream
    except StopAsyncIteration:
        raise ProviderError("the model provider's answer ended early", code="bad_response", retryable=True) from None
    except BaseException:
        await stream.aclose()  # type: ignore[attr-defined]
        raise
