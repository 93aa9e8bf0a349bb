"""GET /v1/jobs/{id}/stream: a job's events as server-sent events, read from DynamoDB, over a real HTTP server."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from aijobs.local.server_process import UvicornThread
from aijobs.services import Services
from tests.helpers import SseEvent, eventually, read_sse
from tests.integration.conftest import KEY_A, KEY_B, run_worker


def _client(server: UvicornThread, key: str = KEY_A) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _events(server: UvicornThread, job_id: str, *, headers: dict[str, str] | None = None,
            params: dict[str, Any] | None = None) -> list[SseEvent]:
    """The whole stream (it ends after the final event)."""
    with _client(server) as client, client.stream("GET", f"/v1/jobs/{job_id}/stream", headers=headers,
                                                  params=params) as answer:
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
        assert answer.headers["cache-control"] == "no-store"
        return [event for event in read_sse(answer.iter_lines()) if event.id is not None]


def _in_background(services: Services, worker_handler: Any) -> threading.Thread:
    worker = threading.Thread(target=run_worker, args=(services, worker_handler))
    worker.start()
    return worker


def _text(events: list[SseEvent]) -> str:
    return "".join(e.json()["text"] for e in events if e.event == "delta")


def test_a_streamed_job_s_deltas_add_up_to_its_output_and_the_final_event_has_the_totals(
        server: UvicornThread, api: Any, services: Services, worker_handler: Any) -> None:
    job = api.post("/v1/jobs", json={"input": "stream me [[tokens=20]] [[token_ms=40]]", "stream": True}).json()
    assert job["stream_url"] == f"http://testserver/v1/jobs/{job['id']}/stream"  # the front that streams
    worker = _in_background(services, worker_handler)
    events = _events(server, job["id"])
    worker.join(timeout=30)
    ids = [int(e.id or 0) for e in events]
    assert ids == sorted(set(ids))  # every event has an id, and they only grow
    assert [e.json() for e in events[:2]] == [{"status": "queued"}, {"status": "in_progress", "attempt": 1}]
    deltas = [e for e in events if e.event == "delta"]
    assert len(deltas) >= 3  # flushed while the model streamed, not in one piece at the end
    final = events[-1]
    assert final.event == "completed" and [e.event for e in events].count("completed") == 1
    done = final.json()
    assert _text(events) == done["output"]["text"] and len(done["output"]["text"].split()) == 20
    assert done["usage"]["output_tokens"] == 20 and done["cost_usd"] is not None
    assert done["model"] == "fake-model" and done["duration_ms"] >= 19 * 40  # 40 ms between 20 tokens
    assert done == {**api.get(f"/v1/jobs/{job['id']}").json(), "stream_url": f"{server.url}/v1/jobs/{job['id']}/stream"}


def test_a_resumed_stream_sends_exactly_what_followed_the_last_event_and_a_replay_is_the_same_stream(
        server: UvicornThread, api: Any, services: Services, worker_handler: Any) -> None:
    job_id = api.post("/v1/jobs", json={"input": "resume me [[tokens=30]] [[token_ms=30]]",
                                        "stream": True}).json()["id"]
    worker = _in_background(services, worker_handler)
    live = _events(server, job_id)
    worker.join(timeout=30)
    middle = next(i for i, e in enumerate(live) if e.event == "delta") + 1  # after the first delta
    expected = [(e.id, e.event, e.data) for e in live[middle + 1:]]
    by_header = _events(server, job_id, headers={"Last-Event-ID": live[middle].id or ""})
    by_query = _events(server, job_id, params={"last_event_id": live[middle].id})
    assert [(e.id, e.event, e.data) for e in by_header] == expected
    assert [(e.id, e.event, e.data) for e in by_query] == expected
    assert _text(live[:middle + 1]) + _text(by_header) == live[-1].json()["output"]["text"]
    replay = _events(server, job_id)  # opened after the end: every event again, the same ids
    assert [(e.id, e.event, e.data) for e in replay] == [(e.id, e.event, e.data) for e in live]
    assert _events(server, job_id, headers={"Last-Event-ID": live[-1].id or ""}) == []  # after the final: nothing


def test_a_job_submitted_without_stream_still_streams_its_statuses_and_final_output(
        server: UvicornThread, api: Any, services: Services, worker_handler: Any) -> None:
    job_id = api.post("/v1/jobs", json={"input": "not streamed"}).json()["id"]
    run_worker(services, worker_handler)
    events = _events(server, job_id)
    assert [e.event for e in events][:2] == ["status", "status"] and events[-1].event == "completed"
    assert _text(events) == events[-1].json()["output"]["text"] == "Echo: not streamed"


def test_a_silent_model_gets_heartbeats_and_the_first_bytes_go_out_at_once(
        server: UvicornThread, api: Any, services: Services, worker_handler: Any) -> None:
    services.settings.stream_heartbeat_s = 0.2
    job_id = api.post("/v1/jobs", json={"input": "think first [[delay_ms=1500]]", "stream": True}).json()["id"]
    worker = _in_background(services, worker_handler)
    with _client(server) as client, client.stream("GET", f"/v1/jobs/{job_id}/stream") as answer:
        lines = answer.iter_lines()
        first = next(lines)  # before any event: a comment, sent at once
        events = list(read_sse(lines))
    worker.join(timeout=30)
    assert first.startswith(":")
    heartbeats = [c for e in events for c in e.comments if c.startswith("ping")]
    assert len(heartbeats) >= 3  # 1.5 s of silence, a comment every 0.2 s
    assert events[-1].event == "completed"


def test_a_queued_job_s_stream_says_so_every_second_until_it_runs_and_the_notes_are_not_events(
        server: UvicornThread, api: Any, services: Services, worker_handler: Any) -> None:
    services.settings.stream_heartbeat_s = 60  # no ping: the notes only
    job_id = api.post("/v1/jobs", json={"input": "wait for it [[tokens=5]]", "stream": True}).json()["id"]
    worker: threading.Thread | None = None
    seen: list[str] = []
    with _client(server) as client, client.stream("GET", f"/v1/jobs/{job_id}/stream") as answer:
        for line in answer.iter_lines():
            seen.append(line)
            if worker is None and seen.count(": queued") == 2:  # two notes while nothing runs it: now run it
                worker = _in_background(services, worker_handler)
    assert worker is not None
    worker.join(timeout=30)
    events = [e for e in read_sse(seen) if e.id is not None]
    assert [e.event for e in events][:2] == ["status", "status"] and events[-1].event == "completed"
    assert events[0].json() == {"status": "queued"} and events[1].comments.count("queued") >= 2
    assert all("queued" not in e.comments for e in events[2:])  # once it runs, no more notes
    assert all(e.id for e in events) and _text(events) == events[-1].json()["output"]["text"]


def test_a_cancelled_running_job_s_stream_ends_with_the_cancelled_event_and_its_usage(
        server: UvicornThread, api: Any, services: Services, worker_handler: Any) -> None:
    job_id = api.post("/v1/jobs", json={"input": "long [[tokens=100]] [[token_ms=100]]", "stream": True}).json()["id"]
    worker = _in_background(services, worker_handler)
    with _client(server) as client, client.stream("GET", f"/v1/jobs/{job_id}/stream") as answer:
        events: list[SseEvent] = []
        for event in read_sse(answer.iter_lines()):
            events.append(event)
            if event.event == "delta":
                assert api.delete(f"/v1/jobs/{job_id}").status_code == 200
    worker.join(timeout=30)
    final = events[-1]
    assert final.event == "cancelled"
    cancelled = final.json()
    assert cancelled["usage"]["estimated"] is True and cancelled["usage"]["output_tokens"] > 0
    assert _text(events) == cancelled["output"]["text"]  # what the model made before the stop, all of it


def test_a_retried_attempt_says_so_before_its_output(
        server: UvicornThread, api: Any, services: Services, worker_handler: Any) -> None:
    job_id = api.post("/v1/jobs", json={"input": "flaky [[fail=500,times=1]]", "stream": True}).json()["id"]
    run_worker(services, worker_handler)  # attempt 1 fails (retryable); its message comes back at once
    eventually(lambda: run_worker(services, worker_handler)["received"], timeout_s=10)
    events = _events(server, job_id)
    statuses = [e.json() for e in events if e.event == "status"]
    assert statuses == [{"status": "queued"}, {"status": "in_progress", "attempt": 1},
                        {"status": "in_progress", "attempt": 2}]
    assert events[-1].event == "completed" and events[-1].json()["attempt"] == 2


def test_closing_the_stream_does_not_cancel_the_job(
        server: UvicornThread, api: Any, services: Services, worker_handler: Any) -> None:
    job_id = api.post("/v1/jobs", json={"input": "keep going [[tokens=10]] [[token_ms=100]]",
                                        "stream": True}).json()["id"]
    worker = _in_background(services, worker_handler)
    with _client(server) as client, client.stream("GET", f"/v1/jobs/{job_id}/stream") as answer:
        next(e for e in read_sse(answer.iter_lines()) if e.event == "delta")  # then the client goes away
    worker.join(timeout=30)
    assert api.get(f"/v1/jobs/{job_id}").json()["status"] == "completed"


def test_another_tenant_s_stream_is_404_and_a_bad_last_event_id_is_422(
        server: UvicornThread, api: Any) -> None:
    job_id = api.post("/v1/jobs", json={"input": "mine"}).json()["id"]
    with _client(server, KEY_B) as other:
        answer = other.get(f"/v1/jobs/{job_id}/stream")
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "job_not_found"
        assert other.get("/v1/jobs/job_nope/stream").status_code == 404
    with _client(server) as client:
        for bad in ("abc", "-1", "1e3"):
            answer = client.get(f"/v1/jobs/{job_id}/stream", headers={"Last-Event-ID": bad})
            assert answer.status_code == 422 and answer.json()["error"]["type"] == "invalid_request"
        assert client.get(f"/v1/jobs/{job_id}/stream", params={"last_event_id": "x"}).status_code == 422


def test_a_stream_closes_after_its_longest_time_and_the_client_resumes(
        server: UvicornThread, api: Any, services: Services) -> None:
    services.settings.stream_max_s = 1
    job_id = api.post("/v1/jobs", json={"input": "never run"}).json()["id"]  # stays queued: no worker
    started = time.monotonic()
    with _client(server) as client, client.stream("GET", f"/v1/jobs/{job_id}/stream") as answer:
        events = list(read_sse(answer.iter_lines()))
    assert time.monotonic() - started < 20  # it closed by itself (a guard against a hang, not a timing)
    assert [e.event for e in events if e.id] == ["status"]
    assert any("Last-Event-ID" in c for c in events[-1].comments)


def _logged_chunks(services: Services, job_id: str) -> int:
    return len(services.store.output_chunks(job_id, 1, after=0, consistent=True))


def test_a_job_nobody_looks_at_while_it_runs_writes_no_output_log(
        api: Any, services: Services, worker_handler: Any) -> None:
    job_id = api.post("/v1/jobs", json={"input": "unwatched [[tokens=30]] [[token_ms=50]]"}).json()["id"]
    run_worker(services, worker_handler)  # 1.5 s of streamed tokens, no GET or stream meanwhile
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "completed" and len(job["output"]["text"].split()) == 30
    assert _logged_chunks(services, job_id) == 0  # no flush: a quiet job's output is written once, at its end


def test_a_look_at_a_running_job_makes_its_worker_flush_its_output_so_far(
        api: Any, services: Services, worker_handler: Any) -> None:
    job_id = api.post("/v1/jobs", json={"input": "watched [[tokens=60]] [[token_ms=50]]"}).json()["id"]
    worker = _in_background(services, worker_handler)
    eventually(lambda: api.get(f"/v1/jobs/{job_id}").json()["status"] == "in_progress", timeout_s=10)
    running = eventually(lambda: (j := api.get(f"/v1/jobs/{job_id}").json())["status"] == "in_progress"
                         and j["output"] and j["progress"] and j, timeout_s=10)
    worker.join(timeout=30)
    done = api.get(f"/v1/jobs/{job_id}").json()
    assert done["status"] == "completed" and done["output"]["text"].startswith(running["output"]["text"])
    assert 0 < running["progress"]["output_tokens"] < 60
    assert _logged_chunks(services, job_id) >= 1


def test_streaming_a_job_that_is_not_stream_true_shows_its_output_as_it_comes(
        server: UvicornThread, api: Any, services: Services, worker_handler: Any) -> None:
    job_id = api.post("/v1/jobs", json={"input": "quiet [[tokens=60]] [[token_ms=50]]"}).json()["id"]
    worker = _in_background(services, worker_handler)
    events = _events(server, job_id)
    worker.join(timeout=30)
    deltas = [e for e in events if e.event == "delta"]
    assert len(deltas) >= 2  # the open stream made its worker flush while it ran, not all at the end
    assert events[-1].event == "completed" and _text(events) == events[-1].json()["output"]["text"]


def test_a_batchs_streamed_jobs_write_their_pieces_together(
        api: Any, services: Services, worker_handler: Any) -> None:
    # Four streamed jobs in one worker batch: their flushes fall on the same instants, and an instant's pieces go in
    # one BatchWriteItem (up to 25 a call), not one write each.
    ids = [api.post("/v1/jobs", json={"input": f"together {n} [[tokens=30]] [[token_ms=50]]", "stream": True})
           .json()["id"] for n in range(4)]
    calls: list[int] = []  # the pieces of each BatchWriteItem call

    def note(params: dict[str, Any], **_: Any) -> None:
        calls.append(sum(len(writes) for writes in params["RequestItems"].values()))

    events = services.dynamodb.meta.client.meta.events
    events.register("provide-client-params.dynamodb.BatchWriteItem", note)
    try:
        run_worker(services, worker_handler)  # 1.5 s of tokens each, flushed every 0.25 s
    finally:
        events.unregister("provide-client-params.dynamodb.BatchWriteItem", note)
    pieces = {job_id: _logged_chunks(services, job_id) for job_id in ids}
    assert all(n >= 2 for n in pieces.values()), pieces
    assert sum(calls) == sum(pieces.values()) and len(calls) < sum(pieces.values()) / 2, (calls, pieces)
    for job_id in ids:
        assert api.get(f"/v1/jobs/{job_id}").json()["status"] == "completed"
