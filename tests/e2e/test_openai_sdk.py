"""Issue 12's "done when", over real HTTP: the official openai SDK, unpatched, pointed at `make run`'s stack."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import openai

from tests.e2e.conftest import KEYS, ROOT, Stack


def _sdk(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.url}/v1", api_key=KEYS["tenant-a"], max_retries=0, timeout=60)


def _finished(sdk: openai.OpenAI, response_id: str) -> openai.types.responses.Response:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = sdk.responses.retrieve(response_id)
        if response.status not in ("queued", "in_progress"):
            return response
        time.sleep(0.1)
    raise AssertionError(f"{response_id} did not finish")


def test_background_create_retrieve_and_cancel(stack: Stack) -> None:
    with _sdk(stack) as sdk:
        created = sdk.responses.create(model="fake-model", input="Hello from the SDK", background=True)
        assert created.status == "queued"
        assert _finished(sdk, created.id).output_text == "Echo: Hello from the SDK"

        slow = sdk.responses.create(model="fake-model", input="slow [[delay_ms=5000]]", background=True)
        assert sdk.responses.cancel(slow.id).status == "cancelled"


def test_a_response_waited_for_and_streaming_with_resume_and_the_helper(stack: Stack) -> None:
    with _sdk(stack) as sdk:
        assert sdk.responses.create(model="fake-model", input="sync").output_text == "Echo: sync"

        events = list(sdk.responses.create(model="fake-model", input="stream [[tokens=8]] [[token_ms=20]]",
                                           stream=True, background=True))
        response_id = events[0].response.id  # type: ignore[union-attr]
        assert events[-1].type == "response.completed"
        resumed = list(sdk.responses.retrieve(response_id, stream=True, starting_after=5))
        assert [e.sequence_number for e in resumed] == [e.sequence_number for e in events[6:]]
        with sdk.responses.stream(response_id=response_id, starting_after=5) as stream:
            assert [e.sequence_number for e in stream] == [e.sequence_number for e in events[6:]]
            assert stream.get_final_response().output_text == events[-1].response.output_text  # type: ignore[union-attr]


def test_the_readmes_example_runs_as_written(stack: Stack) -> None:
    example = ROOT / "examples" / "openai_sdk.py"
    assert example.read_text() in (ROOT / "README.md").read_text()  # the README shows the file as it is
    done = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "AIJOBS_URL": stack.url, "AIJOBS_API_KEY": KEYS["tenant-a"]})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("completed Echo: Summarise: the quarterly report")
    assert lines[2].startswith("replayed: ") and lines[-1] == "cancelled"
