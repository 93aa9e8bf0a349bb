"""``aijobs batch run``: a JSONL file of prompts through ``/v1/jobs/batch``, results written as the jobs end.

A run can stop anywhere (Ctrl-C, a crash) and be run again: each chunk's Idempotency-Key comes from the file and
the chunk (:func:`aijobs.cli.jsonl.chunk_key`), so a chunk sent again is answered with the jobs it made before;
the state file beside ``--out`` keeps each chunk's job ids and where reading the batch's results got to, and results
already in ``--out`` are not fetched again.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from aijobs.cli.client import FINISHED, ApiClient, ApiError
from aijobs.cli.jsonl import Prompt, PromptFile, chunk_key, chunked
from aijobs.cli.resume import RunState, read_results, result_of, write_result

STATUS_IDS = 100  # POST /v1/jobs/status takes at most 100 ids
RESULTS_PAGE = 100  # GET /v1/batches/{id}/results gives at most 100 a page
STATUS_REQUESTS_PER_POLL = 5  # the oldest 500 unfinished jobs are looked at each poll: they end first
POLL_S = 1.0
TRIES = 5  # sends of a prompt whose job the tenant's token rate refused


class Reporter(Protocol):
    def progress(self, *, done: int, total: int, counts: dict[str, int]) -> None: ...


@dataclass
class Summary:
    prompts: int
    invalid: int
    statuses: Counter[str] = field(default_factory=Counter)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0
    batch_id: str | None = None

    def add(self, result: dict[str, Any]) -> None:
        self.statuses[str(result.get("status"))] += 1
        usage = result.get("usage") or {}
        self.input_tokens += usage.get("input_tokens") or 0
        self.output_tokens += usage.get("output_tokens") or 0
        self.cost_usd += result.get("cost_usd") or 0.0

    @property
    def failed(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != "completed")


class Interrupted(Exception):
    """The run stopped early (Ctrl-C); what was done is saved."""

    def __init__(self, summary: Summary) -> None:
        self.summary = summary


@dataclass
class BatchRun:
    api: ApiClient
    source: PromptFile
    out: Path
    reporter: Reporter
    concurrency: int = 4
    chunk_size: int = 100
    stop_after: int | None = None  # tests: behave as a Ctrl-C once this many results were written
    clock: Callable[[], float] = time.monotonic
    rate_window_end: Callable[[], float] = lambda: (time.time() // 60 + 1) * 60 + 1  # rates are per UTC minute

    def __post_init__(self) -> None:
        self.state_path = RunState.path_for(self.out)
        self.state = RunState.load(self.state_path, input_sha256=self.source.sha256, chunk_size=self.chunk_size)
        self.results = read_results(self.out)
        self.chunks = chunked(self.source.prompts, self.chunk_size)
        self.waiting: dict[str, str] = {}  # job id -> custom_id, in submission order
        self.live: Counter[str] = Counter()  # the last known status of the waiting jobs
        self.counts: dict[str, int] = {}  # what the bar last showed
        self.written = 0
        self.sink: TextIO
        self.by_id = {prompt.custom_id: prompt for prompt in self.source.prompts}
        self.retry: dict[str, Prompt] = {}  # refused for the tenant's rate: sent again once its minute is over
        self.retry_at = 0.0
        self.tries: Counter[str] = Counter()
        self.results_read = False  # the batch's results were all read: what still waits is looked at one by one
        self.pool: ThreadPoolExecutor
        self.summary = Summary(len(self.source.prompts), len(self.source.bad))
        for result in self.results.values():
            self.summary.add(result)

    def run(self) -> Summary:
        started = self.clock()
        self.pool = ThreadPoolExecutor(self.concurrency)
        try:
            with self.out.open("a") as self.sink:
                self.loop()
        except KeyboardInterrupt:
            # results are flushed line by line and the state saved chunk by chunk; this last save is quick, and a
            # second Ctrl-C (or `timeout`'s signal to the whole group) must not turn it into a traceback
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            self.report(look=False)  # the bar shows every result written before the stop
            raise Interrupted(self.finish(started)) from None
        finally:
            # requests in flight (one asleep on a Retry-After) are not waited for: they are all safe to lose
            self.pool.shutdown(wait=False, cancel_futures=True)
        return self.finish(started)

    def loop(self) -> None:
        self.take_over_submitted()
        pending = [index for index in range(len(self.chunks)) if str(index) not in self.state.chunks
                   and any(p.custom_id not in self.results for p in self.chunks[index])]
        while pending or self.waiting or self.retry:
            if pending:
                # the first chunk alone: its answer names the batch the others join
                take = 1 if not self.state.chunks else self.concurrency
                self.submit([(str(index), self.chunks[index]) for index in pending[:take]])
                del pending[:take]
            elif self.retry and time.time() >= self.retry_at:
                retry = list(self.retry.values())[:self.chunk_size]
                self.submit([(f"retry-{self.state.retries}", retry)])
            if not self.collect() and not pending:
                time.sleep(POLL_S)
            self.report()

    def finish(self, started: float) -> Summary:
        self.state.save(self.state_path)
        self.summary.wall_s = self.clock() - started
        self.summary.batch_id = self.state.batch_id
        return self.summary

    def take_over_submitted(self) -> None:
        """The jobs an earlier run submitted, in the order it sent them: those without a result are waited for."""
        for record in self.state.chunks.values():
            self.take(record.items)

    def submit(self, requests: list[tuple[str, list[Prompt]]]) -> None:
        answers = self.pool.map(lambda request: self.send(*request), requests)
        for (label, prompts), answer in zip(requests, answers, strict=True):
            items = [[prompt.custom_id, item.get("id"), item.get("error")]
                     for prompt, item in zip(prompts, answer["data"], strict=True)]
            self.state.record(label, chunk_key(self.source.sha256, label, prompts), items, answer.get("batch_id"))
            self.state.save(self.state_path)
            self.take(items)
        self.results_read = False  # a batch that had ended goes on with these jobs

    def take(self, items: list[list[Any]]) -> None:
        """A chunk's answer: its jobs are waited for; an item over the tenant's rate is sent again after the
        minute (a few times); another item error is that prompt's result."""
        for custom_id, job_id, error in items:
            if custom_id in self.results:
                continue
            self.retry.pop(custom_id, None)
            if job_id:
                self.waiting[job_id] = custom_id
                self.live["queued"] += 1
            elif error.get("type") == "rate_limited" and error.get("retryable") and self.tries[custom_id] < TRIES:
                self.tries[custom_id] += 1
                self.retry[custom_id] = self.by_id[custom_id]
                self.retry_at = max(self.retry_at, self.rate_window_end())
            else:
                self.write(result_of(custom_id, {"status": "rejected", "error": error}))

    def send(self, label: str, prompts: list[Prompt]) -> dict[str, Any]:
        body: dict[str, Any] = {"jobs": [prompt.job for prompt in prompts]}
        if self.state.batch_id:  # a server without batch objects never names one, and is never sent one
            body["batch_id"] = self.state.batch_id
        answer: dict[str, Any] = self.api.request(
            "POST", "/v1/jobs/batch", json=body,
            headers={"Idempotency-Key": chunk_key(self.source.sha256, label, prompts)})
        return answer

    def collect(self) -> int:
        """Write the jobs that ended; answers how many. With a batch, from its results as they end (a request a
        hundred); otherwise, and for what waits once every result was read, by looking at their statuses."""
        if self.state.batch_id and not self.results_read:
            return self.collect_results(self.state.batch_id)
        return self.collect_by_status()

    def collect_results(self, batch_id: str) -> int:
        written = 0
        while True:
            cursor = self.state.results_cursor
            page = self.api.request("GET", f"/v1/batches/{batch_id}/results",
                                    params={"limit": RESULTS_PAGE, **({"cursor": cursor} if cursor else {})})
            for job in page["data"]:
                if (custom_id := self.waiting.pop(job["id"], None)) is not None:  # else written by an earlier run
                    self.write(result_of(custom_id, job))
                    written += 1
            if page["next_cursor"] is None:  # the batch ended and every result was given
                self.results_read = True
                return written
            self.state.results_cursor = page["next_cursor"]
            self.state.save(self.state_path)
            if len(page["data"]) < RESULTS_PAGE:
                return written

    def collect_by_status(self) -> int:
        """Look at the oldest unfinished jobs; fetch and write those that ended."""
        ids = list(self.waiting)[:STATUS_IDS * STATUS_REQUESTS_PER_POLL]
        statuses: dict[str, str] = {}
        for start in range(0, len(ids), STATUS_IDS):
            answer = self.api.request("POST", "/v1/jobs/status", json={"ids": ids[start:start + STATUS_IDS]})
            statuses.update((item["id"], item["status"]) for item in answer["data"])
        self.live = Counter(status for job_id, status in statuses.items() if status not in FINISHED)
        self.live["queued"] += len(self.waiting) - len(ids)
        gone = [job_id for job_id, status in statuses.items() if status == "not_found"]
        for job_id in gone:
            self.write(result_of(self.waiting.pop(job_id), {"id": job_id, "status": "failed", "error": {
                "type": "not_found", "code": None, "message": "the job is gone (kept 24 h after it ended?)"}}))
        ended = [job_id for job_id, status in statuses.items() if status in FINISHED]
        for job in self.pool.map(self.fetch_job, ended):
            self.write(result_of(self.waiting.pop(job["id"]), job))
        return len(ended) + len(gone)

    def fetch_job(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.api.request("GET", f"/v1/jobs/{job_id}")
        return job

    def write(self, result: dict[str, Any]) -> None:
        write_result(self.sink, result)
        self.results[result["custom_id"]] = result
        self.summary.add(result)
        self.written += 1
        if self.stop_after is not None and self.written >= self.stop_after:
            raise KeyboardInterrupt

    def report(self, *, look: bool = True) -> None:
        """The bar: the results written, and the batch's counts (``look=False``: as last seen, asking nothing)."""
        if look:
            self.counts = self.batch_counts() or {**self.live, **self.summary.statuses}
        self.reporter.progress(done=len(self.results), total=len(self.source.prompts), counts=dict(self.counts))

    def batch_counts(self) -> dict[str, int] | None:
        """The batch's counts from ``GET /v1/batches/{id}``, when the server has batch objects."""
        if not self.state.batch_id:
            return None
        try:
            batch = self.api.request("GET", f"/v1/batches/{self.state.batch_id}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        counts: dict[str, int] = batch.get("counts") or {}
        return counts


def describe(counts: dict[str, int], order: Iterable[str] = ("queued", "in_progress", "completed", "failed")) -> str:
    names = {"in_progress": "running"}
    return "  ".join(f"{names.get(status, status)} {counts.get(status, 0)}" for status in order)

