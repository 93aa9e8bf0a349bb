"""The ``aijobs`` command line against the local stack, run as a user runs it: a process, its output, its exit code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from tests.e2e.conftest import KEYS, Stack


def aijobs(stack: Stack, *args: str, tenant: str = "tenant-a", key: str | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIJOBS_URL": stack.url, "AIJOBS_API_KEY": KEYS[tenant] if key is None else key}
    return subprocess.run([sys.executable, "-m", "aijobs.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def job_of(stack: Stack, job_id: str, tenant: str = "tenant-a") -> dict[str, Any]:
    with stack.client(tenant) as client:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        return job


def test_submit_prints_the_job_id(stack: Stack) -> None:
    done = aijobs(stack, "submit", "hello cli", "--metadata", "team=cli")
    assert done.returncode == 0, done.stderr
    job = job_of(stack, done.stdout.strip())
    assert job["metadata"] == {"team": "cli"}


def test_submit_wait_prints_the_output_and_the_totals(stack: Stack) -> None:
    done = aijobs(stack, "submit", "hello cli", "--wait")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Echo: hello cli\n"
    assert "completed" in done.stderr and "tokens" in done.stderr


def test_submit_stream_prints_the_tokens_then_a_line_of_totals(stack: Stack) -> None:
    done = aijobs(stack, "submit", "[[tokens=12]] [[token_ms=30]] stream me", "--stream")
    assert done.returncode == 0, done.stderr
    job_id = done.stderr.split()[0]
    job = job_of(stack, job_id)
    assert job["status"] == "completed" and len(job["output"]["text"].split()) == 12
    assert done.stdout == job["output"]["text"] + "\n"
    assert f"{job['usage']['output_tokens']} out tokens" in done.stderr and "$" in done.stderr


def test_stream_json_gives_every_event_once_in_order(stack: Stack) -> None:
    job_id = aijobs(stack, "submit", "[[tokens=6]] [[token_ms=20]] events").stdout.strip()
    done = aijobs(stack, "--json", "stream", job_id)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    ids = [int(event["id"]) for event in events]
    assert ids == sorted(set(ids))
    assert events[-1]["event"] == "completed" and events[-1]["data"]["id"] == job_id


def test_cancel_then_wait_says_the_job_was_cancelled(stack: Stack) -> None:
    job_id = aijobs(stack, "submit", "[[delay_ms=8000]] too slow").stdout.strip()
    done = aijobs(stack, "cancel", job_id)
    assert (done.returncode, done.stdout) == (0, f"{job_id} cancelled\n"), done.stderr
    waited = aijobs(stack, "wait", job_id)
    assert waited.returncode == 1 and "cancelled" in waited.stderr


def test_a_failed_job_exits_1_and_retry_makes_a_new_job(stack: Stack) -> None:
    failed = aijobs(stack, "submit", "[[fail=400]] doomed", "--wait")
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: provider_error http_400: ") and "Traceback" not in failed.stderr
    original = failed.stderr.rsplit("(job ", 1)[1].rstrip(")\n")
    retried = aijobs(stack, "retry", original)
    assert retried.returncode == 0, retried.stderr
    assert job_of(stack, retried.stdout.strip())["retry_of"] == original
    again = aijobs(stack, "retry", original)
    assert again.returncode == 1 and again.stderr.startswith("error: conflict already_retried: ")


def test_a_streamed_job_that_fails_prints_its_error_and_exits_1(stack: Stack) -> None:
    done = aijobs(stack, "submit", "[[fail=400]] streamed doom", "--stream")
    assert done.returncode == 1 and done.stdout.strip() == ""
    assert "error: provider_error http_400: " in done.stderr and "Traceback" not in done.stderr


def test_errors_are_one_line_and_never_a_traceback(stack: Stack) -> None:
    wrong_key = aijobs(stack, "get", "job_nope", key="aj_wrong")
    missing_job = aijobs(stack, "get", "job_nope")
    no_key = aijobs(stack, "list", key="")
    env = {**os.environ, "AIJOBS_API_KEY": "k"}
    unreachable = subprocess.run([sys.executable, "-m", "aijobs.cli", "--url", "http://127.0.0.1:9", "list"],
                                 env=env, capture_output=True, text=True, timeout=60, check=False)
    for done, code, start in [(wrong_key, 1, "error: authentication "), (missing_job, 1, "error: not_found "),
                              (no_key, 2, "error: no API key"), (unreachable, 1, "error: connection unreachable: ")]:
        assert done.returncode == code and done.stderr.startswith(start), done.stderr
        assert done.stderr.count("\n") == 1 and done.stdout == ""


def write_prompts(path: Path, run: str, count: int, bad: dict[int, str]) -> int:
    """``count`` lines, those numbered in ``bad`` (from 1) replaced; answers how many good prompts there are."""
    lines = []
    for number in range(1, count + 1):
        job = {"custom_id": f"c{number}", "input": f"batch prompt {number}", "metadata": {"run": run}}
        lines.append(bad.get(number, json.dumps(job) if number % 3 else json.dumps(f"plain {number} {run}")))
    path.write_text("\n".join(lines) + "\n")
    return count - len(bad)


def jobs_of_run(stack: Stack, run: str, tenant: str) -> list[dict[str, Any]]:
    found, cursor = [], None
    with stack.client(tenant) as client:
        while True:
            page = client.get("/v1/jobs", params={"limit": 100, **({"cursor": cursor} if cursor else {})}).json()
            found += [job for job in page["data"] if (job.get("metadata") or {}).get("run") == run
                      or (job.get("output") or {}).get("text", "").endswith(run)]
            if not (cursor := page["next_cursor"]):
                return found


def test_batch_run_stopped_half_way_resumes_without_sending_anything_twice(stack: Stack, tmp_path: Path) -> None:
    run = uuid.uuid4().hex
    prompts, out = tmp_path / "prompts.jsonl", tmp_path / "results.jsonl"
    bad = {7: "{not json", 88: "[1, 2]", 150: '{"custom_id": "c1", "input": "reused id"}'}
    refused = {120: json.dumps({"custom_id": "c120", "input": "x", "temperature": 5})}  # sent; the server says no
    good = write_prompts(prompts, run, 200, {**bad, **refused}) + len(refused)
    command = ("batch", "run", str(prompts), "--out", str(out), "--chunk-size", "20", "--concurrency", "2")

    stopped = aijobs(stack, *command, "--stop-after", "40", tenant="tenant-b")
    assert stopped.returncode == 130, stopped.stderr
    assert "run the same command again to resume" in stopped.stderr
    for number, reason in [(7, "not JSON"), (88, "a JSON list"), (150, "custom_id already used on line 1")]:
        assert f"line {number}: {reason}" in stopped.stderr
    first = out.read_text()
    assert 40 <= first.count("\n") < good

    resumed = aijobs(stack, *command, tenant="tenant-b")
    assert resumed.returncode == 1, resumed.stderr  # bad lines were skipped and one job was refused
    assert out.read_text().startswith(first)  # results written before are kept, not fetched and written again
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(results) == good and len({r["custom_id"] for r in results}) == good
    by_id = {r["custom_id"]: r for r in results}
    assert by_id["c120"]["status"] == "rejected" and by_id["c120"]["error"]["type"] == "invalid_request"
    assert by_id["c120"]["id"] is None
    completed = [r for r in results if r["status"] == "completed"]
    assert len(completed) == good - 1
    assert by_id["c2"]["output"]["text"] == "Echo: batch prompt 2" and by_id["c2"]["usage"]["output_tokens"] > 0
    assert by_id["line-3"]["output"]["text"] == f"Echo: plain 3 {run}"

    submitted = jobs_of_run(stack, run, "tenant-b")
    assert len(submitted) == good - 1 and len({job["id"] for job in submitted}) == good - 1
    assert {r["id"] for r in completed} == {job["id"] for job in submitted}
    assert "completed" in resumed.stderr + resumed.stdout and str(good - 1) in resumed.stdout


def _ctrl_c_on() -> None:
    """In the child, before the command starts: Ctrl-C (SIGINT) as a terminal gives it. A suite started in the
    background (``make test &``) runs with SIGINT ignored, which children inherit and Python then keeps."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_batch_run_interrupted_by_ctrl_c_resumes(stack: Stack, tmp_path: Path) -> None:
    run = uuid.uuid4().hex
    prompts, out = tmp_path / "prompts.jsonl", tmp_path / "results.jsonl"
    prompts.write_text("".join(json.dumps({"input": f"[[delay_ms=300]] slow {n}", "metadata": {"run": run}}) + "\n"
                               for n in range(30)))
    env = {**os.environ, "AIJOBS_URL": stack.url, "AIJOBS_API_KEY": KEYS["tenant-b"]}
    command = [sys.executable, "-m", "aijobs.cli", "--json", "batch", "run", str(prompts), "--out", str(out),
               "--chunk-size", "5"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_ctrl_c_on)
    state = out.with_name("results.jsonl.state")
    deadline = time.monotonic() + 60
    while not state.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)  # twice, as an impatient user (or `timeout`, to the child and its group)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in stderr and "Aborted" not in stderr, stderr
    assert "run the same command again to resume" in stderr
    assert len(out.read_text().splitlines()) < 30

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["statuses"] == {"completed": 30} and summary["bad_lines"] == 0
    assert len({json.loads(line)["custom_id"] for line in out.read_text().splitlines()}) == 30
    assert len(jobs_of_run(stack, run, "tenant-b")) == 30


def test_ctrl_c_while_waiting_or_streaming_exits_130_with_one_line(stack: Stack) -> None:
    with stack.client() as client:
        job_id = client.post("/v1/jobs", json={"input": "[[delay_ms=30000]] slow"}).json()["id"]
    env = {**os.environ, "AIJOBS_URL": stack.url, "AIJOBS_API_KEY": KEYS["tenant-a"]}
    try:
        # --json after the command as before it; the stream has begun once its first event is printed
        streaming = subprocess.Popen([sys.executable, "-m", "aijobs.cli", "stream", job_id, "--json"], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_on)
        assert streaming.stdout is not None and json.loads(streaming.stdout.readline())["event"] == "status"
        waiting = subprocess.Popen([sys.executable, "-m", "aijobs.cli", "wait", job_id], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_on)
        time.sleep(4)  # its first look at the job is long done
        for process in (streaming, waiting):
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=30)
            assert process.returncode == 130 and stderr.strip().splitlines()[-1] == "interrupted", stderr
            assert "Traceback" not in stderr and "Aborted" not in stderr
    finally:
        with stack.client() as client:
            client.delete(f"/v1/jobs/{job_id}")


def test_strict_sends_nothing_when_a_line_is_bad(stack: Stack, tmp_path: Path) -> None:
    prompts, out = tmp_path / "prompts.jsonl", tmp_path / "results.jsonl"
    prompts.write_text('"fine"\n{oops\n')
    done = aijobs(stack, "batch", "run", str(prompts), "--out", str(out), "--strict")
    assert done.returncode == 1 and "line 2: not JSON" in done.stderr and "nothing was sent" in done.stderr
    assert not out.exists() and not out.with_name("results.jsonl.state").exists()


def test_usage_and_schedules_commands(stack: Stack) -> None:
    usage = aijobs(stack, "--json", "usage", "--days", "3")
    assert usage.returncode == 0, usage.stderr
    assert len(json.loads(usage.stdout)["data"]) == 3
    created = aijobs(stack, "schedules", "create", "rate(1 day)", "from the cli", "--disabled")
    assert created.returncode == 0, created.stderr
    schedule_id = created.stdout.strip()
    listed = aijobs(stack, "--json", "schedules", "list")
    assert schedule_id in {json.loads(line)["id"] for line in listed.stdout.splitlines()}
    fired = aijobs(stack, "schedules", "run", schedule_id)
    assert fired.returncode == 0 and job_of(stack, fired.stdout.strip())["schedule_id"] == schedule_id
    assert aijobs(stack, "schedules", "delete", schedule_id).stdout == f"{schedule_id} deleted\n"
    assert aijobs(stack, "schedules", "run", schedule_id).stderr.startswith("error: not_found ")
