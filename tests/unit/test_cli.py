"""The command line's pure parts: the prompt file, chunk keys, resume state, the client's waits and stream resume."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aijobs.cli.batch import BatchRun
from aijobs.cli.client import ApiClient, ApiError
from aijobs.cli.jsonl import BadLine, Prompt, chunk_key, chunked, parse_line, read_prompts
from aijobs.cli.resume import ResumeError, RunState, read_results, result_of, write_result


def test_object_and_string_lines_are_prompts_and_blank_lines_are_nothing() -> None:
    assert parse_line(3, '{"custom_id": "a", "input": "hi", "max_output_tokens": 5}') == Prompt(
        3, "a", {"input": "hi", "max_output_tokens": 5})
    assert parse_line(4, '"just a prompt"', {"model": "m"}) == Prompt(
        4, "line-4", {"model": "m", "input": "just a prompt"})
    assert parse_line(5, "   ") is None


def test_a_line_s_own_fields_win_over_the_defaults() -> None:
    prompt = parse_line(1, '{"input": "x", "model": "mine"}', {"model": "default"})
    assert isinstance(prompt, Prompt) and prompt.job["model"] == "mine"


@pytest.mark.parametrize(("text", "reason"), [
    ("{nope", "not JSON"),
    ('{"input": "x', "not JSON (Unterminated string starting at column 11)"),
    ("[1, 2]", "a JSON list"),
    ("42", "a JSON int"),
    ('{"custom_id": "x"}', "no input"),
    ('{"input": ""}', "no input"),
    ('{"custom_id": 7, "input": "x"}', "custom_id must be"),
])
def test_a_bad_line_says_why_without_echoing_it(text: str, reason: str) -> None:
    bad = parse_line(9, text)
    assert isinstance(bad, BadLine) and bad.line == 9 and reason in bad.reason
    assert str(bad).startswith("line 9: ")


def test_the_file_keeps_line_numbers_and_refuses_a_reused_custom_id(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('"one"\n{bad\n\n{"custom_id": "c", "input": "x"}\n{"custom_id": "c", "input": "y"}\n"six"')
    parsed = read_prompts(path)
    assert [(p.line, p.custom_id) for p in parsed.prompts] == [(1, "line-1"), (4, "c"), (6, "line-6")]
    assert [(b.line, b.reason.split(" (")[0]) for b in parsed.bad] == [
        (2, "not JSON"), (5, "custom_id already used on line 4")]


def test_chunk_keys_are_stable_and_differ_with_file_index_and_content() -> None:
    prompts = [Prompt(n, f"line-{n}", {"input": str(n)}) for n in range(1, 6)]
    first, second = chunked(prompts, 2)[:2]
    key = chunk_key("sha", "0", first)
    assert key == chunk_key("sha", "0", list(first)) and key.startswith("aijobs-cli-") and len(key) <= 255
    changed = [first[0], Prompt(2, "line-2", {"input": "other"})]
    assert len({key, chunk_key("sha2", "0", first), chunk_key("sha", "1", first), chunk_key("sha", "0", changed),
                chunk_key("sha", "0", second), chunk_key("sha", "retry-0", first)}) == 6
    assert [len(c) for c in chunked(prompts, 2)] == [2, 2, 1]


def test_state_round_trips_and_refuses_another_input(tmp_path: Path) -> None:
    path = RunState.path_for(tmp_path / "out.jsonl")
    assert path.name == "out.jsonl.state"
    state = RunState.load(path, input_sha256="abc", chunk_size=100)
    state.record("0", "k0", [["a", "job_1", None], ["b", None, {"type": "invalid_request"}]], "bat_1")
    state.record("retry-0", "k1", [["c", "job_2", None]], None)
    state.save(path)
    loaded = RunState.load(path, input_sha256="abc", chunk_size=100)
    assert loaded == state and loaded.batch_id == "bat_1" and loaded.retries == 1
    with pytest.raises(ResumeError, match="another input file"):
        RunState.load(path, input_sha256="changed", chunk_size=100)
    with pytest.raises(ResumeError, match="another input file"):
        RunState.load(path, input_sha256="abc", chunk_size=50)


def test_a_cut_last_result_line_is_removed_and_fetched_again(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with out.open("w") as sink:
        write_result(sink, result_of("a", {"id": "job_1", "status": "completed", "output": {"text": "x"}}))
        sink.write('{"custom_id": "b", "id": "jo')  # a stop in the middle of a write
    assert list(read_results(out)) == ["a"]
    assert out.read_text().count("\n") == 1 and out.read_text().endswith("\n")


def test_results_file_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("hello\n{}\n")
    with pytest.raises(ResumeError, match="line 1"):
        read_results(out)


def api_with(handler: httpx.MockTransport, sleeps: list[float]) -> ApiClient:
    return ApiClient("http://api.test", "k", http=httpx.Client(base_url="http://api.test", transport=handler),
                     sleep=sleeps.append)


def test_a_429_is_waited_out_with_retry_after_then_the_answer_comes() -> None:
    calls: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "3"}, json={"error": {
                "type": "rate_limited", "code": "requests_per_minute", "message": "slow down", "request_id": "r1"}})
        return httpx.Response(200, json={"ok": True})

    sleeps: list[float] = []
    assert api_with(httpx.MockTransport(answer), sleeps).request("GET", "/v1/usage") == {"ok": True}
    assert sleeps == [3.0] and calls[0].headers["authorization"] == "Bearer k"


def test_an_error_is_one_line_with_type_code_message_and_request_id() -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(404, headers={"X-Request-Id": "r9"}, json={"error": {
        "type": "not_found", "code": "job_not_found", "message": "no such job", "retryable": False}}))
    with pytest.raises(ApiError) as caught:
        api_with(transport, []).request("GET", "/v1/jobs/job_x")
    assert caught.value.line() == "error: not_found job_not_found: no such job (request r9)"
    assert caught.value.status == 404


def test_a_budget_wait_until_midnight_is_an_error_not_a_sleep() -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(429, headers={"Retry-After": "40000"}, json={"error": {
        "type": "quota_exceeded", "code": "daily_budget", "message": "over budget"}}))
    sleeps: list[float] = []
    with pytest.raises(ApiError, match="quota_exceeded daily_budget"):
        api_with(transport, sleeps).request("POST", "/v1/jobs", json={"input": "x"})
    assert sleeps == []


def sse(*events: tuple[int, str, dict[str, object]]) -> bytes:
    return b"".join(f"id: {i}\nevent: {name}\ndata: {json.dumps(data)}\n\n".encode() for i, name, data in events)


class DropsAfter(httpx.SyncByteStream):
    """A stream that sends some bytes, then loses the connection."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self.data
        raise httpx.ReadError("connection reset")


def test_a_dropped_stream_resumes_after_the_last_event_it_saw() -> None:
    seen_last_ids: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen_last_ids.append(request.headers.get("last-event-id"))
        headers = {"content-type": "text/event-stream"}
        if len(seen_last_ids) == 1:
            first = sse((1, "status", {"status": "queued"}), (1000001, "delta", {"text": "Hel"}))
            return httpx.Response(200, headers=headers, stream=DropsAfter(first))
        rest = sse((1000002, "delta", {"text": "lo"}), (1999999, "completed", {"id": "job_1", "status": "completed"}))
        return httpx.Response(200, headers=headers, content=rest)

    sleeps: list[float] = []
    events = list(api_with(httpx.MockTransport(answer), sleeps).events("job_1"))
    assert seen_last_ids == [None, "1000001"]
    assert [(e.event, e.id) for e in events] == [
        ("status", "1"), ("delta", "1000001"), ("delta", "1000002"), ("completed", "1999999")]
    assert "".join(e.json()["text"] for e in events if e.event == "delta") == "Hello"
    assert len(sleeps) == 1


def test_an_output_is_printed_as_the_model_wrote_it_however_long_its_lines(capsys: pytest.CaptureFixture[str]) -> None:
    from aijobs.cli.main import Settings, show_ended, stream

    text = "Echo: " + " ".join(f"word{n}" for n in range(40))  # one delta of 245 characters: wider than a terminal
    body = sse((1000001, "delta", {"text": text[:6]}), (1000002, "delta", {"text": text[6:]}),
               (1999999, "completed", {"id": "job_1", "status": "completed", "output": {"text": text}}))
    api = api_with(httpx.MockTransport(lambda request: httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=body)), [])

    settings = Settings(url="http://api.test", key="k", as_json=False)
    stream(api, settings, "job_1")
    assert capsys.readouterr().out == text + "\n"
    show_ended(settings, {"id": "job_1", "status": "completed", "output": {"text": text}, "usage": None})
    assert capsys.readouterr().out == text + "\n"  # and so is a finished job's (--wait)


def test_no_lambda_code_imports_the_command_line_or_its_libraries() -> None:
    root = Path(__file__).parents[2]
    sources = [*(root / "layers/core/aijobs").rglob("*.py"), *(root / "functions").rglob("*.py")]
    cli_dir = root / "layers/core/aijobs/cli"
    outside = [path for path in sources if cli_dir not in path.parents]
    assert len(outside) > 50
    for path in outside:
        for line in path.read_text().splitlines():
            words = line.split()
            if words[:1] in (["import"], ["from"]) and len(words) > 1:
                module = words[1]
                assert not module.startswith(("aijobs.cli", "click", "rich", "httpx_sse")), f"{path}: {line}"


class FakeBatchApi:
    """The batch routes in memory, as the server keeps them: a key replays its answer; the first send of a prompt
    with "limited" in it is refused for the token rate."""

    def __init__(self) -> None:
        self.answers: dict[str, dict[str, object]] = {}
        self.jobs: dict[str, dict[str, object]] = {}
        self.refused: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/jobs/batch":
            key = request.headers["idempotency-key"]
            if key not in self.answers:
                self.answers[key] = {"data": [self.create(job) for job in json.loads(request.content)["jobs"]]}
            return httpx.Response(202, json=self.answers[key])
        if request.url.path == "/v1/jobs/status":
            ids = json.loads(request.content)["ids"]
            return httpx.Response(200, json={"data": [{"id": i, "status": "completed"} for i in ids]})
        return httpx.Response(200, json=self.jobs[request.url.path.rsplit("/", 1)[1]])

    def create(self, job: dict[str, object]) -> dict[str, object]:
        text = str(job["input"])
        if "limited" in text and text not in self.refused:
            self.refused.add(text)
            return {"error": {"type": "rate_limited", "code": "tokens_per_minute", "message": "m", "retryable": True}}
        if "bad" in text:
            return {"error": {"type": "invalid_request", "code": "invalid_fields", "message": "m", "retryable": False}}
        job_id = f"job_{len(self.jobs)}"
        self.jobs[job_id] = {"id": job_id, "status": "completed", "output": {"text": f"Echo: {text}"},
                             "usage": {"input_tokens": 1, "output_tokens": 2}, "cost_usd": 0.5}
        return {"id": job_id, "status": "queued"}


class Quiet:
    def progress(self, *, done: int, total: int, counts: dict[str, int]) -> None:
        return None


def test_a_prompt_refused_for_the_rate_is_sent_again_and_a_rerun_sends_nothing(tmp_path: Path) -> None:
    prompts, out = tmp_path / "p.jsonl", tmp_path / "out.jsonl"
    prompts.write_text("".join(json.dumps(text) + "\n" for text in ["a", "limited b", "bad c", "d", "e"]))
    fake = FakeBatchApi()
    run = BatchRun(api_with(httpx.MockTransport(fake), []), read_prompts(prompts), out, Quiet(), chunk_size=2,
                   rate_window_end=lambda: 0.0)
    summary = run.run()
    results = {r["custom_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert {k: r["status"] for k, r in results.items()} == {
        "line-1": "completed", "line-2": "completed", "line-3": "rejected", "line-4": "completed",
        "line-5": "completed"}
    assert results["line-2"]["output"] == {"text": "Echo: limited b"} and len(fake.jobs) == 4
    assert (summary.failed, summary.input_tokens, summary.cost_usd) == (1, 4, 2.0)
    assert list(RunState.load(RunState.path_for(out), input_sha256=read_prompts(prompts).sha256,
                              chunk_size=2).chunks) == ["0", "1", "2", "retry-0"]

    again = BatchRun(api_with(httpx.MockTransport(fake), []), read_prompts(prompts), out, Quiet(), chunk_size=2)
    again.run()
    assert len(fake.jobs) == 4 and len(out.read_text().splitlines()) == 5


def test_batch_cancel_calls_again_while_the_server_is_cancelling(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from aijobs.cli import main

    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(200, json={"id": "bat_1", "status": "cancelling" if len(calls) < 3 else "cancelled"})

    monkeypatch.setattr(main.Settings, "api", lambda self: api_with(httpx.MockTransport(answer), []))
    result = CliRunner().invoke(main.cli, ["--key", "k", "batch", "cancel", "bat_1"])
    assert result.exit_code == 0 and "bat_1 cancelled" in result.output
    assert calls == ["/v1/batches/bat_1/cancel"] * 3  # a large batch is cancelled in pages, call after call
