"""A job's events as a stream follows them (aijobs/streams.py): what many streams of one process read, and what a
queued job's stream says while it waits."""

from __future__ import annotations

import asyncio
import time
from typing import Any

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

    def _status(self) -> JobStatus:
        return JobStatus.completed if time.monotonic() >= self.ends_at else JobStatus.queued

    def get_states(self, job_ids: list[str], **_: Any) -> dict[str, JobState]:
        self.state_reads.append(sorted(job_ids))
        return {job_id: JobState(tenant="t", status=self._status()) for job_id in job_ids}

    def get_state(self, job_id: str, **_: Any) -> JobState | None:
        self.single_reads += 1
        return JobState(tenant="t", status=self._status())

    def get_job(self, job_id: str, **_: Any) -> Job:
        return self.jobs[job_id].model_copy(update={"status": self._status(), "completed_at": 1})


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
    events = JobEvents(store, poll_s=0.05)  # type: ignore[arg-type]

    followed = asyncio.run(_follow_all(events, jobs))

    assert all([e.kind for e in stream] == ["status", "final"] for stream in followed)
    assert store.single_reads == 0  # never one job's state on its own
    assert 2 <= len(store.state_reads) <= 5  # a read every 0.5 s for all 20 streams, not 20 reads
    assert max(len(read) for read in store.state_reads) == 20


def test_a_queued_job_s_stream_says_it_waits_every_so_often_and_the_notes_are_not_events() -> None:
    job = _job(1)
    store = Store([job], queued_s=1.3)
    events = JobEvents(store, poll_s=0.05)  # type: ignore[arg-type]

    [noted] = asyncio.run(_follow_all(events, [job], waiting_every=0.25))
    [plain] = asyncio.run(_follow_all(JobEvents(Store([job], queued_s=1.3), poll_s=0.05), [job]))  # type: ignore[arg-type]

    notes = [e for e in noted if e.kind == "waiting"]
    assert 3 <= len(notes) <= 6 and {(e.id, e.status) for e in notes} == {(0, JobStatus.queued)}
    assert [e for e in noted if e.kind != "waiting"] == plain  # the same events, with notes between them
    assert noted[0].kind == "status" and noted[-1].kind == "final" and "waiting" not in [e.kind for e in plain]
