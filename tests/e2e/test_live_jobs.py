"""Live jobs through the stack of `make run`: watch a job's tokens arrive, drop and resume the stream, cancel a long
job and see the model stop, retry a failed job."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.e2e.conftest import Stack
from tests.helpers import SseEvent, eventually, read_sse


def _unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:8]}"


def _text(events: list[SseEvent]) -> str:
    return "".join(e.json()["text"] for e in events if e.event == "delta")


def _model_stats(stack: Stack, prompt: str) -> dict[str, int]:
    stats: dict[str, int] = httpx.get(f"{stack.model_url}/_stats", params={"prompt": prompt}).json()
    return stats


def test_watch_a_stream_drop_it_and_resume_exactly_where_it_stopped(stack: Stack) -> None:
    with stack.client() as client:
        job = client.post("/v1/jobs", json={"input": _unique("[[tokens=40]] [[token_ms=50]] tell me"),
                                            "stream": True}).json()
        assert job["stream_url"] == f"{stack.url}/v1/jobs/{job['id']}/stream"
        first: list[SseEvent] = []
        with client.stream("GET", job["stream_url"]) as answer:  # curl -N .../stream
            for event in read_sse(answer.iter_lines()):
                first.append(event)
                if sum(e.event == "delta" for e in first) == 3:
                    break  # the connection drops
        rest: list[SseEvent] = []
        with client.stream("GET", job["stream_url"], headers={"Last-Event-ID": first[-1].id or ""}) as answer:
            rest = [e for e in read_sse(answer.iter_lines()) if e.id is not None]
    final = rest[-1]
    assert final.event == "completed"
    done = final.json()
    assert not {e.id for e in first} & {e.id for e in rest}  # nothing twice
    assert _text(first) + _text(rest) == done["output"]["text"]
    assert done["usage"]["output_tokens"] == 40 and done["cost_usd"] > 0 and done["duration_ms"] > 0


def test_cancel_a_long_job_and_the_model_stops(stack: Stack) -> None:
    prompt = _unique("[[tokens=200]] [[token_ms=100]] a long answer")  # 20 s if nobody stops it
    with stack.client() as client:
        job_id = client.post("/v1/jobs", json={"input": prompt, "stream": True}).json()["id"]
        eventually(lambda: client.get(f"/v1/jobs/{job_id}").json()["output"], timeout_s=20)  # it is generating
        cancelled = client.delete(f"/v1/jobs/{job_id}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        stats = eventually(lambda: (s := _model_stats(stack, prompt))["prompt_aborted"] and s, timeout_s=10)
        assert stats["prompt"] == 1 and stats["prompt_aborted"] == 1  # the model's stream was closed
        job: dict[str, Any] = eventually(lambda: (j := client.get(f"/v1/jobs/{job_id}").json())["usage"] and j,
                                         timeout_s=10)
    assert job["status"] == "cancelled" and job["usage"]["estimated"] is True
    assert 0 < job["usage"]["output_tokens"] < 200 and job["cost_usd"] > 0  # a cancelled job is not free


def test_retry_a_failed_job(stack: Stack) -> None:
    with stack.client() as client:
        failed_id = client.post("/v1/jobs", json={"input": _unique("[[fail=400]] bad")}).json()["id"]
        eventually(lambda: client.get(f"/v1/jobs/{failed_id}").json()["status"] == "failed")
        retry = client.post(f"/v1/jobs/{failed_id}/retry")
        assert retry.status_code == 202 and retry.json()["retry_of"] == failed_id
        assert client.get(f"/v1/jobs/{failed_id}").json()["retried_by"] == retry.json()["id"]
        assert client.post(f"/v1/jobs/{failed_id}/retry").status_code == 409  # once
