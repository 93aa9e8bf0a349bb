"""A deterministic, OpenAI-compatible fake model server (chat completions, streaming or not).

Directives in the prompt drive tests:
``[[delay_ms=N]]`` latency before answering; ``[[fail=CODE]]`` answer that HTTP status every time;
``[[fail=CODE,times=K]]`` fail the first K calls for the same request, then succeed;
``[[retry_after=V]]`` / ``[[retry_after_ms=V]]`` send that ``Retry-After`` / ``retry-after-ms`` with a failure;
``[[tokens=N]]`` make the output exactly N tokens (words) long.
The reply is ``Echo: `` followed by the text of the last user message.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

_DIRECTIVE = re.compile(r"\[\[(delay_ms|fail|tokens|retry_after|retry_after_ms)=([^\]]+)\]\]")
_FILLER = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit"]


def _directives(text: str) -> dict[str, str]:
    return {name: value.strip() for name, value in _DIRECTIVE.findall(text)}


def _reply_words(prompt: str, tokens: int | None, cap: int | None) -> tuple[list[str], str]:
    words = ["Echo:", *prompt.split()]
    if tokens is not None:
        words = (words + _FILLER * (tokens // len(_FILLER) + 1))[:tokens] if tokens > len(words) else words[:tokens]
    if cap is not None and len(words) > cap:
        return words[:cap], "length"
    return words, "stop"


def create_fake_model() -> FastAPI:
    app = FastAPI(title="aijobs fake model")
    calls: Counter[str] = Counter()  # by request hash, by user prompt, "total", "in_flight", "max_in_flight"
    app.state.calls = calls

    @app.get("/_stats")
    async def stats(prompt: str | None = None) -> dict[str, int]:
        """Call counts, for tests: in all, for one user prompt, and the most calls ever in flight at once."""
        return {"total": calls["total"], "max_in_flight": calls["max_in_flight"],
                **({"prompt": calls[f"prompt:{prompt}"]} if prompt is not None else {})}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "aijobs"}]}

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
            return await _answer(body, text, user_text, request_hash, calls)
        finally:
            calls["in_flight"] -= 1

    return app


async def _answer(body: dict[str, Any], text: str, user_text: str, request_hash: str,
                  calls: Counter[str]) -> Any:
    found = _directives(text)
    if "delay_ms" in found:
        await asyncio.sleep(int(found["delay_ms"]) / 1000)
    if "fail" in found:
        code, _, times = found["fail"].partition(",times=")
        if not times or calls[request_hash] <= int(times):
            headers = {name.replace("_", "-"): found[name] for name in ("retry_after", "retry_after_ms")
                       if name in found}
            return JSONResponse({"error": {"message": "fake failure", "type": "fake_error",
                                           "code": None, "param": None}}, status_code=int(code), headers=headers)
    cap = body.get("max_completion_tokens") or body.get("max_tokens")
    words, finish = _reply_words(user_text, int(found["tokens"]) if "tokens" in found else None, cap)
    usage = {"prompt_tokens": len(text.split()), "completion_tokens": len(words),
             "total_tokens": len(text.split()) + len(words)}
    base = {"id": f"chatcmpl-{request_hash[:12]}", "created": int(time.time()),
            "model": body.get("model", "fake-model")}
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(_stream(base, words, finish, usage if include_usage else None),
                                 media_type="text/event-stream")
    return {**base, "object": "chat.completion", "usage": usage, "choices": [{
        "index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": " ".join(words)}}]}


async def _stream(base: dict[str, Any], words: list[str], finish: str,
                  usage: dict[str, int] | None) -> AsyncIterator[str]:
    def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> str:
        choices = [{"index": 0, "delta": delta, "finish_reason": finish_reason}] if delta or finish_reason else []
        return "data: " + json.dumps({**base, "object": "chat.completion.chunk", "choices": choices, **extra}) + "\n\n"

    yield chunk({"role": "assistant", "content": ""})
    for i, word in enumerate(words):
        yield chunk({"content": word if i == 0 else " " + word})
        await asyncio.sleep(0)
    yield chunk({}, finish)
    if usage is not None:
        yield chunk({}, None, usage=usage)
    yield "data: [DONE]\n\n"
