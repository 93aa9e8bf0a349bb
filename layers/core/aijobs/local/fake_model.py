"""A deterministic, OpenAI-compatible fake model server: chat completions (streaming or not, structured outputs),
embeddings and image generations (local/fake_kinds.py makes their vectors, images and JSON).

Directives in the prompt drive tests:
``[[delay_ms=N]]`` latency before answering; ``[[fail=CODE]]`` answer that HTTP status every time;
``[[fail=CODE,times=K]]`` fail the first K calls for the same request, then succeed;
``[[retry_after=V]]`` / ``[[retry_after_ms=V]]`` send that ``Retry-After`` / ``retry-after-ms`` with a failure;
``[[tokens=N]]`` make the output exactly N tokens (words) long;
``[[token_ms=N]]`` (0 to 10000) N ms between one output token and the next: streamed token by token, or in one
answer that takes as long; another value is a 400.
``[[invalid_json=1]]`` answer a ``json_schema`` request with JSON that does not fit its schema.
The reply is ``Echo: `` followed by the text of the last user message; with ``response_format`` ``json_schema``, JSON
that fits the schema (its strings echo that text); with ``json_object``, ``{"echo": <that text>}``. A message
of numbered sources and a question (``Sources:``, ``[1] ...``, ``Question: ...``: an answer job's) is answered with
the first sentence of the first two sources, each citing its number.
Embeddings are unit vectors: a hashed vector for each word of a text, summed (texts sharing words are near), of
``dimensions`` (default 256); images are one-colour PNGs of
the asked ``size``, as ``b64_json``. ``delay_ms`` and ``fail`` apply to them too (in any input text, or the prompt).
``GET /_stats`` counts calls, and streams the client closed before their end (``aborted``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from aijobs.local import fake_kinds
from aijobs.models.jobs import as_base64

_DIRECTIVE = re.compile(r"\[\[(delay_ms|fail|tokens|token_ms|retry_after|retry_after_ms|invalid_json)=([^\]]+)\]\]")
_FILLER = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit"]
TOKEN_MS_MAX = 10_000

Sleep = Callable[[float], Awaitable[object]]


def _directives(text: str) -> dict[str, str]:
    return {name: value.strip() for name, value in _DIRECTIVE.findall(text)}


def _reply_words(prompt: str, tokens: int | None, cap: int | None) -> tuple[list[str], str]:
    words = ["Echo:", *prompt.split()]
    if tokens is not None:
        words = (words + _FILLER * (tokens // len(_FILLER) + 1))[:tokens] if tokens > len(words) else words[:tokens]
    if cap is not None and len(words) > cap:
        return words[:cap], "length"
    return words, "stop"


def _token_ms(found: dict[str, str]) -> int | None:
    """The ``token_ms`` directive's value; ValueError when it is not a whole number from 0 to TOKEN_MS_MAX."""
    if "token_ms" not in found:
        return None
    value = int(found["token_ms"])
    if not 0 <= value <= TOKEN_MS_MAX:
        raise ValueError("token_ms out of range")
    return value


class _Stream(StreamingResponse):
    """A stream whose body is closed however the response ends, so that its generator learns of a client gone
    while it waited at a ``yield`` (Starlette stops iterating then, and would leave closing it to the GC)."""

    def __init__(self, body: AsyncGenerator[str]) -> None:
        super().__init__(body, media_type="text/event-stream")
        self._body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._body.aclose()


def create_fake_model(*, sleep: Sleep = asyncio.sleep) -> FastAPI:
    """The fake model's app; ``sleep`` waits out ``delay_ms`` and ``token_ms`` (tests pass one that records)."""
    app = FastAPI(title="aijobs fake model")
    # by request hash; "prompt:" and "aborted:" by user prompt; "total", "aborted", "in_flight", "max_in_flight"
    calls: Counter[str] = Counter()
    app.state.calls = calls

    @app.get("/_stats")
    async def stats(prompt: str | None = None) -> dict[str, int]:
        """Counts, for tests: calls and aborted streams in all and for one user prompt, the most calls in flight."""
        one = {"prompt": calls[f"prompt:{prompt}"], "prompt_aborted": calls[f"aborted:{prompt}"]}
        return {"total": calls["total"], "aborted": calls["aborted"], "max_in_flight": calls["max_in_flight"],
                **(one if prompt is not None else {})}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "aijobs"}]}

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Any:
        body = await request.json()
        texts = [body["input"]] if isinstance(body.get("input"), str) else list(body.get("input") or [])
        if not texts or not all(isinstance(t, str) for t in texts):
            return _error("input must be a string or a list of strings", 400)
        dimensions = int(body.get("dimensions") or fake_kinds.DEFAULT_DIMENSIONS)
        if not 0 < dimensions <= fake_kinds.MAX_DIMENSIONS:
            return _error(f"dimensions must be from 1 to {fake_kinds.MAX_DIMENSIONS}", 400)
        key = "embeddings:" + hashlib.sha256("\n".join(texts).encode()).hexdigest()
        calls[key] += 1
        calls["total"] += 1
        if (failed := await _delay_or_fail("\n".join(texts), key, calls, sleep)):
            return failed
        as_b64 = body.get("encoding_format") == "base64"
        data = [{"object": "embedding", "index": i, "embedding": as_base64(vector) if as_b64 else vector}
                for i, vector in enumerate(fake_kinds.embedding(t, dimensions) for t in texts)]
        tokens = sum(len(t.split()) for t in texts)
        return {"object": "list", "data": data, "model": body.get("model", "fake-embedding"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    @app.post("/v1/images/generations")
    async def images(request: Request) -> Any:
        body = await request.json()
        prompt, n = str(body.get("prompt") or ""), int(body.get("n") or 1)
        try:
            width, height = fake_kinds.image_size(body.get("size"))
        except ValueError as exc:
            return _error(str(exc), 400)
        if not prompt or not 1 <= n <= 10:
            return _error("prompt is required and n must be from 1 to 10", 400)
        key = "images:" + hashlib.sha256(prompt.encode()).hexdigest()
        calls[key] += 1
        calls["total"] += 1
        if (failed := await _delay_or_fail(prompt, key, calls, sleep)):
            return failed
        images = [base64.b64encode(fake_kinds.png(f"{i}:{prompt}", width, height)).decode() for i in range(n)]
        return {"created": int(time.time()), "data": [{"b64_json": image} for image in images],
                "usage": {"input_tokens": len(prompt.split()), "output_tokens": 0, "total_tokens": len(prompt.split())}}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        body = await request.json()
        messages = body.get("messages") or []
        text = "\n".join(str(m.get("content", "")) for m in messages)
        user_text = next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")
        request_hash = hashlib.sha256(json.dumps([body.get("model"), messages], sort_keys=True).encode()).hexdigest()
        calls[request_hash] += 1
        calls[f"prompt:{user_text}"] += 1
        calls["total"] += 1
        calls["in_flight"] += 1
        calls["max_in_flight"] = max(calls["max_in_flight"], calls["in_flight"])
        try:
            return await _answer(body, text, user_text, request_hash, calls, sleep)
        finally:
            calls["in_flight"] -= 1

    return app


def _error(message: str, status_code: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "fake_error", "code": None, "param": None}},
                        status_code=status_code, headers=headers)


async def _delay_or_fail(text: str, request_hash: str, calls: Counter[str], sleep: Sleep) -> JSONResponse | None:
    """The ``delay_ms`` and ``fail`` directives of a request: its failure, or None to answer it."""
    found = _directives(text)
    if "delay_ms" in found:
        await sleep(int(found["delay_ms"]) / 1000)
    if "fail" in found:
        code, _, times = found["fail"].partition(",times=")
        if not times or calls[request_hash] <= int(times):
            headers = {name.replace("_", "-"): found[name] for name in ("retry_after", "retry_after_ms")
                       if name in found}
            return _error("fake failure", int(code), headers)
    return None


def _structured(body: dict[str, Any], user_text: str, found: dict[str, str]) -> str | None:
    """The answer to a ``response_format`` request: JSON (fitting its schema unless ``invalid_json``), else None."""
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_object":
        return json.dumps({"echo": user_text})
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        value = fake_kinds.unfitting(schema) if "invalid_json" in found else fake_kinds.fitting(schema, user_text)
        return json.dumps(value)
    return None


async def _answer(body: dict[str, Any], text: str, user_text: str, request_hash: str,
                  calls: Counter[str], sleep: Sleep) -> Any:
    found = _directives(text)
    try:
        token_ms = _token_ms(found)
    except ValueError:
        return _error(f"token_ms must be a whole number from 0 to {TOKEN_MS_MAX}", 400)
    if (failed := await _delay_or_fail(text, request_hash, calls, sleep)):
        return failed
    cap = body.get("max_completion_tokens") or body.get("max_tokens")
    if (structured := _structured(body, user_text, found)) is not None:
        words, finish = structured.split(" "), "stop"
    elif (cited := fake_kinds.cited_answer(user_text)) is not None:
        words, finish = cited.split(" "), "stop"
    else:
        words, finish = _reply_words(user_text, int(found["tokens"]) if "tokens" in found else None, cap)
    usage = {"prompt_tokens": len(text.split()), "completion_tokens": len(words),
             "total_tokens": len(text.split()) + len(words)}
    base = {"id": f"chatcmpl-{request_hash[:12]}", "created": int(time.time()),
            "model": body.get("model", "fake-model")}
    gap = (token_ms or 0) / 1000
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def aborted() -> None:
            calls["aborted"] += 1
            calls[f"aborted:{user_text}"] += 1

        return _Stream(_stream(base, words, finish, usage if include_usage else None, gap=gap, sleep=sleep,
                               on_abort=aborted))
    if gap and len(words) > 1:
        await sleep(gap * (len(words) - 1))  # as long as the stream of the same answer
    return {**base, "object": "chat.completion", "usage": usage, "choices": [{
        "index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": " ".join(words)}}]}


async def _stream(base: dict[str, Any], words: list[str], finish: str, usage: dict[str, int] | None, *,
                  gap: float, sleep: Sleep, on_abort: Callable[[], None]) -> AsyncGenerator[str]:
    """The answer as chunks, ``gap`` seconds between tokens; ``on_abort`` when the client leaves before the end
    (the generator is cancelled in a sleep, or closed at a ``yield``)."""
    # With include_usage, OpenAI sends "usage": null on every chunk but the last, which has no choices.
    no_usage = {} if usage is None else {"usage": None}

    def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> str:
        choices = [{"index": 0, "delta": delta, "finish_reason": finish_reason}] if delta or finish_reason else []
        return "data: " + json.dumps({**base, "object": "chat.completion.chunk", "choices": choices, **no_usage,
                                      **extra}) + "\n\n"

    finished = False
    try:
        yield chunk({"role": "assistant", "content": ""})
        for i, word in enumerate(words):
            if i and gap:
                await sleep(gap)
            else:
                await asyncio.sleep(0)
            yield chunk({"content": word if i == 0 else " " + word})
        yield chunk({}, finish)
        if usage is not None:
            yield chunk({}, None, usage=usage)
        yield "data: [DONE]\n\n"
        finished = True  # Starlette asks for more only once [DONE] went out
    finally:
        if not finished:
            on_abort()


def main() -> None:
    """``python -m aijobs.local.fake_model PORT``: the fake model in a process of its own (``make run``'s)."""
    import sys

    from aijobs.local.server_process import UvicornThread, serve_until_stdin_closes

    def start() -> Callable[[], None]:
        server = UvicornThread(create_fake_model(), int(sys.argv[1]))
        server.start()
        return server.stop

    serve_until_stdin_closes(start)


if __name__ == "__main__":
    main()
