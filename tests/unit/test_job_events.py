"""A job's events as a stream follows them (aijobs/streams.py): what many streams of one process read, and what a
queued job's stream says while it waits."""

from __future__ import annotations

import asyncio
import itertools
import time
from types import SimpleNamespace
from typing import Any

from aijobs.errors import NotFound
from aijobs.models.jobs import Job, JobRequest, JobStatus
from aijobs.store import JobState
from aijobs.streams import JobEvent, JobEvents


class Store:
    """Jobs that stay queued for ``queued_s``, then have ended (with no output log): how they are read is kept."""

    def __init__(self, jobs: list[Job], *, queued_s: float) -> None:
        self.jobs = {job.id: job for job in jobs}
        self.ends_at = time.monotonic() + queued_s
        self.state_reads: list[list[str]] = []
        self.single_reads = 0
        self.job_reads: list[list[str]] = []  # whole jobs

    def _status(self) -> JobStatus:
        return JobStatus.completed if time.monotonic() >= self.ends_at else JobStatus.queued

    def get_states(self, job_ids: list[str], **_: Any) -> dict[str, JobState]:
        self.state_reads.append(sorted(job_ids))
        return {job_id: JobState(tenant="t", status=self._status()) for job_id in job_ids}

    def get_state(self, job_id: str, **_: Any) -> JobState | None:
        self.single_reads += 1
        return JobState(tenant="t", status=self._status())

    def get_jobs(self, job_ids: list[str], **_: Any) -> dict[str, Job]:
        self.job_reads.append(sorted(job_ids))
        return {job_id: self.jobs[job_id].model_copy(update={"status": self._status(), "completed_at": 1})
                for job_id in job_ids}

    def output_texts(self, chunks: list[tuple[str, int, int]]) -> dict[tuple[str, int, int], str]:
        return {}  # no output log


def _job(n: int) -> Job:
    return Job(id=f"job_{n}", tenant="t", status=JobStatus.queued, model="m", created_at=1,
               request=JobRequest(input="x", stream=True))


async def _follow_all(events: JobEvents, jobs: list[Job], **options: Any) -> list[list[JobEvent]]:
    async def one(job: Job) -> list[JobEvent]:
        return [event async for event in events.follow(job, **options)]

    return await asyncio.gather(*(one(job) for job in jobs))


def test_the_streams_of_one_process_read_their_jobs_states_together() -> None:
    jobs = [_job(n) for n in range(20)]
    store = Store(jobs, queued_s=1.2)
    events = JobEvents(store, poll_s=0.05)

    followed = asyncio.run(_follow_all(events, jobs))

    assert all([e.kind for e in stream] == ["status", "final"] for stream in followed)
    assert store.single_reads == 0  # never one job's state on its own
    assert 2 <= len(store.state_reads) <= 5  # a read every 0.5 s for all 20 streams, not 20 reads
    assert max(len(read) for read in store.state_reads) == 20
    assert store.job_reads == [sorted(job.id for job in jobs)]  # the ended jobs, read whole in one call


def test_the_streams_that_open_together_read_their_jobs_in_one_call_and_another_tenants_job_is_not_found() -> None:
    jobs = [_job(n) for n in range(5)]
    store = Store(jobs, queued_s=60)
    events = JobEvents(store, poll_s=0.05)

    async def open_all() -> list[Any]:
        ids = [job.id for job in jobs]
        return await asyncio.gather(*(events.open(tenant="t", job_id=job_id) for job_id in ids),
                                    events.open(tenant="other", job_id="job_1"),
                                    events.open(tenant="t", job_id="nope"), return_exceptions=True)

    *opened, others, malformed = asyncio.run(open_all())

    assert [job.id for job in opened] == [job.id for job in jobs]
    assert store.job_reads == [sorted(job.id for job in jobs)]  # six openings of five jobs: one read
    assert isinstance(others, NotFound) and isinstance(malformed, NotFound)  # (an id that is no job's: not read)


def test_a_queued_job_s_stream_says_it_waits_every_so_often_and_the_notes_are_not_events() -> None:
    job = _job(1)
    store = Store([job], queued_s=1.3)
    events = JobEvents(store, poll_s=0.05)

    [noted] = asyncio.run(_follow_all(events, [job], waiting_every=0.25))
    [plain] = asyncio.run(_follow_all(JobEvents(Store([job], queued_s=1.3), poll_s=0.05), [job]))

    notes = [e for e in noted if e.kind == "waiting"]
    assert 3 <= len(notes) <= 6 and {(e.id, e.status) for e in notes} == {(0, JobStatus.queued)}
    assert [e for e in noted if e.kind != "waiting"] == plain  # the same events, with notes between them
    assert noted[0].kind == "status" and noted[-1].kind == "final" and "waiting" not in [e.kind for e in plain]


class Log:
    """Output log chunks (as JobStore.append_output writes them), read together by key; its reads are kept."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, int, int], str] = {}
        self.reads: list[list[str]] = []

    def put(self, job_id: str, seq: int, text: str) -> None:
        self.items[job_id, 1, seq] = text

    def read(self, chunks: list[tuple[str, int, int]]) -> dict[tuple[str, int, int], str]:
        self.reads.append(sorted(job_id for job_id, _, _ in chunks))
        return {chunk: self.items[chunk] for chunk in chunks if chunk in self.items}


class RunningStore(Store):
    """Running jobs whose output log ``log`` holds; once ended, their whole output is ``CHUNKS`` chunks."""

    def __init__(self, jobs: list[Job], log: Log) -> None:
        super().__init__(jobs, queued_s=0)
        self.log, self.ended, self.log_reads = log, False, 0

    def get_states(self, job_ids: list[str], **_: Any) -> dict[str, JobState]:
        status = JobStatus.completed if self.ended else JobStatus.in_progress
        return {job_id: JobState(tenant="t", status=status, attempt=1) for job_id in job_ids}

    def get_job(self, job_id: str, **_: Any) -> Job:
        text = "".join(f"{job_id}:{seq} " for seq in range(1, CHUNKS + 1))
        return self.jobs[job_id].model_copy(update={
            "status": JobStatus.completed, "attempt": 1, "output_text": text, "output_logged_chars": len(text),
            "output_seq": CHUNKS, "completed_at": 1})

    def output_texts(self, chunks: list[tuple[str, int, int]]) -> dict[tuple[str, int, int], str]:
        return self.log.read(chunks)

    def output_chunks(self, job_id: str, attempt: int, *, after: int, limit: int | None = None,
                      **_: Any) -> list[Any]:
        self.log_reads += 1
        chunks: list[Any] = []
        while (limit is None or len(chunks) < limit) and (
                text := self.log.items.get((job_id, attempt, after + len(chunks) + 1))):
            chunks.append(SimpleNamespace(text=text))
        return chunks


CHUNKS = 6


def test_the_live_streams_of_one_process_poll_their_logs_together_and_each_gets_its_own_output() -> None:
    jobs = [_job(n).model_copy(update={"status": JobStatus.in_progress, "attempt": 1}) for n in range(10)]
    log = Log()
    store = RunningStore(jobs, log)
    events = JobEvents(store, poll_s=0.05)

    async def run() -> list[list[JobEvent]]:
        async def model() -> None:  # every job's worker flushes a chunk every 0.1 s
            for seq in range(1, CHUNKS + 1):
                await asyncio.sleep(0.1)
                for job in jobs:
                    log.put(job.id, seq, f"{job.id}:{seq} ")
            await asyncio.sleep(0.1)
            store.ended = True

        followed, _ = await asyncio.gather(_follow_all(events, jobs), model())
        return followed

    followed = asyncio.run(run())

    for job, stream in zip(jobs, followed, strict=True):
        assert "".join(e.text for e in stream if e.kind == "delta") == store.get_job(job.id).output_text
        assert stream[-1].kind == "final"
    assert max(len(set(read)) for read in log.reads) == len(jobs)  # one read held every stream's next key
    assert len(log.reads) <= 40  # about one an instant for all 10 streams, not one a stream
    assert store.log_reads <= 2 * len(jobs)  # each stream's own reads: when it joins, and when the job has ended


class SlowStore(Store):
    """A queued job whose state reads take ``read_s`` each (a table under load)."""

    def __init__(self, jobs: list[Job], *, queued_s: float, read_s: float) -> None:
        super().__init__(jobs, queued_s=queued_s)
        self.read_s = read_s

    def get_states(self, job_ids: list[str], **_: Any) -> dict[str, JobState]:
        time.sleep(self.read_s)
        return super().get_states(job_ids)


def test_a_queued_job_s_notes_keep_their_pace_while_a_slow_read_of_its_state_is_under_way() -> None:
    job = _job(1)
    events = JobEvents(SlowStore([job], queued_s=2.5, read_s=1.2), poll_s=0.05)

    async def timed() -> list[tuple[float, JobEvent]]:
        return [(time.monotonic(), event) async for event in events.follow(job, waiting_every=0.25)]

    stream = asyncio.run(timed())

    times = [at for at, event in stream if event.kind != "final"]
    assert max(b - a for a, b in itertools.pairwise(times)) < 0.6  # a note every 0.25 s, not one a read (1.2 s)
    assert stream[-1][1].kind == "final" and sum(e.kind == "waiting" for _, e in stream) >= 6
