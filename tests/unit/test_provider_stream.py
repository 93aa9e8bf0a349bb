"""The provider streams every call: deltas in order, then usage and the model that answered; closing stops it.

The fake model runs in-process behind httpx2's ASGI transport (no sockets), reached through the real SDK.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx2
import pytest
from openai import AsyncOpenAI

from aijobs.errors import ProviderError, ProviderTimeout
from aijobs.local.fake_model import create_fake_model
from aijobs.models.jobs import JobRequest
from aijobs.providers import Delta, OpenAIProvider, StreamEnd


def _provider(transport: httpx2.AsyncBaseTransport) -> OpenAIProvider:
    return OpenAIProvider(lambda: AsyncOpenAI(api_key="k", base_url="http://model.test/v1", max_retries=0,
                                              http_client=httpx2.AsyncClient(transport=transport)))


def _fake_model() -> OpenAIProvider:
    return _provider(httpx2.ASGITransport(app=create_fake_model()))


async def _events(provider: OpenAIProvider, prompt: str) -> list[Delta | StreamEnd]:
    return [event async for event in provider.stream(JobRequest(input=prompt), model="fake-model")]


def test_stream_yields_the_output_in_pieces_then_usage_and_the_answering_model() -> None:
    events = asyncio.run(_events(_fake_model(), "one two three"))

    *deltas, end = events
    assert all(isinstance(d, Delta) for d in deltas) and len(deltas) == 4
    assert "".join(d.text for d in deltas if isinstance(d, Delta)) == "Echo: one two three"
    assert end == StreamEnd(usage=end.usage, model="fake-model", finish_reason="stop")  # type: ignore[union-attr]
    assert (end.usage.input_tokens, end.usage.output_tokens) == (3, 4)  # type: ignore[union-attr]


def test_complete_is_the_fold_of_the_stream() -> None:
    completion = asyncio.run(_fake_model().complete(JobRequest(input="fold me"), model="fake-model"))

    assert completion.text == "Echo: fold me" and completion.model == "fake-model"
    assert completion.usage.total_tokens == completion.usage.input_tokens + completion.usage.output_tokens


def test_a_provider_error_before_the_stream_is_classified() -> None:
    with pytest.raises(ProviderError) as raised:
        asyncio.run(_events(_fake_model(), "down [[fail=503]]"))

    assert (raised.value.code, raised.value.retryable) == ("http_503", True)


class _Dripping(httpx2.AsyncByteStream):
    """An SSE body that sends one delta at a time, for ever, and records whether the client closed it."""

    def __init__(self) -> None:
        self.chunks_sent = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            self.chunks_sent += 1
            chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "drip",
                     "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}]}
            yield f"data: {json.dumps(chunk)}\n\n".encode()
            await asyncio.sleep(0)

    async def aclose(self) -> None:
        self.closed = True


def test_closing_the_stream_early_closes_the_http_response() -> None:
    body = _Dripping()
    provider = _provider(httpx2.MockTransport(lambda request: httpx2.Response(
        200, headers={"content-type": "text/event-stream"}, stream=body)))

    async def take_two() -> list[str]:
        stream = provider.stream(JobRequest(input="endless"), model="drip")
        texts = [(await anext(stream)).text, (await anext(stream)).text]  # type: ignore[union-attr]
        await stream.aclose()
        return texts

    assert asyncio.run(take_two()) == ["x", "x"]
    assert body.closed and body.chunks_sent <= 3  # the provider was told to stop, not read to the end


def test_a_stream_slower_than_the_jobs_timeout_is_a_retryable_timeout() -> None:
    provider = _provider(httpx2.MockTransport(lambda request: httpx2.Response(
        200, headers={"content-type": "text/event-stream"}, stream=_Dripping())))

    with pytest.raises(ProviderTimeout) as raised:
        asyncio.run(provider.complete(JobRequest(input="endless", timeout_s=1), model="drip"))

    assert raised.value.retryable


def _sse(body: str) -> OpenAIProvider:
    """A provider whose model answers ``body`` as its event stream."""
    return _provider(httpx2.MockTransport(lambda request: httpx2.Response(
        200, headers={"content-type": "text/event-stream"}, content=body.encode())))


def _chunk(**fields: object) -> str:
    return json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", **fields})


def test_the_stream_is_read_as_server_sent_events_whatever_their_layout() -> None:
    # Given events with comments, an event name, a data field without its space and one split over two data lines
    body = (": keep-alive\n\n"
            f"event: chunk\ndata: {_chunk(choices=[{'index': 0, 'delta': {'content': 'one '}}])}\n\n"
            f"data:{_chunk(choices=[{'index': 0, 'delta': {'content': 'two'}, 'finish_reason': 'length'}])}\n\n"
            'data: {"id": "c", "model": "m-2024",\ndata:  "choices": [], "usage": {"prompt_tokens": 5, '
            '"completion_tokens": 2, "total_tokens": 7}}\n\n'
            "data: [DONE]\n\n")
    # When it is read
    *deltas, end = asyncio.run(_events(_sse(body), "p"))
    # Then the deltas, the usage, the answering model and why it stopped are the events'
    assert [d.text for d in deltas if isinstance(d, Delta)] == ["one ", "two"]
    assert end == StreamEnd(usage=end.usage, model="m-2024", finish_reason="length")  # type: ignore[union-attr]
    assert (end.usage.input_tokens, end.usage.output_tokens, end.usage.total_tokens) == (5, 2, 7)  # type: ignore[union-attr]


def test_an_error_event_in_the_stream_fails_the_call_without_quoting_it() -> None:
    body = (f"data: {_chunk(choices=[{'index': 0, 'delta': {'content': 'half'}}])}\n\n"
            'data: {"error": {"message": "overloaded while echoing the secret prompt", "type": "server_error"}}\n\n')

    with pytest.raises(ProviderError) as raised:
        asyncio.run(_events(_sse(body), "p"))

    assert raised.value.code == "bad_response" and "secret" not in str(raised.value)


@pytest.mark.parametrize("bad", ["data: {not json\n\n", "data: [1, 2]\n\n",
                                 'data: {"choices": [], "usage": {"prompt_tokens": "many"}}\n\n'])
def test_a_chunk_that_cannot_be_read_is_a_retryable_bad_response(bad: str) -> None:
    with pytest.raises(ProviderError) as raised:
        asyncio.run(_events(_sse(bad), "p"))

    assert (raised.value.code, raised.value.retryable) == ("bad_response", True)


def test_the_body_after_done_is_read_to_its_end_and_not_used() -> None:
    body = (f"data: {_chunk(choices=[{'index': 0, 'delta': {'content': 'kept'}}])}\n\n"
            "data: [DONE]\n\n"
            f"data: {_chunk(choices=[{'index': 0, 'delta': {'content': 'after'}}])}\n\n")

    events = asyncio.run(_events(_sse(body), "p"))

    assert [e.text for e in events if isinstance(e, Delta)] == ["kept"]
