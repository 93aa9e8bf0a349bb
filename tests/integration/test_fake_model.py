"""The fake model over real HTTP on 127.0.0.1: a stream the client closes before its end is counted as aborted."""

from __future__ import annotations

import uuid
from itertools import islice
from typing import Any

import httpx

from aijobs.local.server_process import UvicornThread
from tests.helpers import eventually


def _stream(client: httpx.Client, prompt: str) -> Any:
    return client.stream("POST", "/v1/chat/completions", json={
        "model": "fake-model", "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": prompt}]})


def _stats(client: httpx.Client, prompt: str) -> dict[str, int]:
    return dict(client.get("/_stats", params={"prompt": prompt}).json())


def test_a_stream_closed_after_two_chunks_is_aborted_and_called_once(fake_model: UvicornThread) -> None:
    prompt = f"leave early {uuid.uuid4()} [[token_ms=10000]] [[tokens=20]]"  # minutes long if read to the end
    with httpx.Client(base_url=fake_model.url) as client:
        with _stream(client, prompt) as response:
            first_two = list(islice((line for line in response.iter_lines() if line.startswith("data: ")), 2))
        assert len(first_two) == 2 and '"Echo:"' in first_two[1]

        stats = eventually(lambda: (s := _stats(client, prompt))["prompt_aborted"] and s)

    assert (stats["prompt"], stats["prompt_aborted"]) == (1, 1)
    assert stats["aborted"] >= 1  # the total counts every prompt's


def test_a_stream_read_to_the_end_is_not_aborted(fake_model: UvicornThread) -> None:
    prompt = f"read it all {uuid.uuid4()} [[token_ms=1]] [[tokens=5]]"
    with httpx.Client(base_url=fake_model.url) as client:
        with _stream(client, prompt) as response:
            lines = [line for line in response.iter_lines() if line.startswith("data: ")]

        stats = _stats(client, prompt)

    assert lines[-1] == "data: [DONE]" and len(lines) == 1 + 5 + 1 + 1 + 1  # role, tokens, finish, usage, DONE
    assert (stats["prompt"], stats["prompt_aborted"]) == (1, 0)
