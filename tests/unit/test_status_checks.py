"""The worker's status checks: the running jobs of a process are read together, each gets its own state."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from aijobs.models.jobs import JobStatus
from aijobs.status_checks import StatusChecks
from aijobs.store import JobState


class Store:
    def __init__(self, states: dict[str, JobState], error: BaseException | None = None, read_s: float = 0.0) -> None:
        self.states, self.error, self.read_s = states, error, read_s
        self.reads: list[list[str]] = []

    def get_states(self, job_ids: list[str], **_: Any) -> dict[str, JobState]:
        self.reads.append(sorted(job_ids))
        time.sleep(self.read_s)
        if self.error is not None:
            raise self.error
        return {job_id: self.states[job_id] for job_id in job_ids if job_id in self.states}


def _state(status: JobStatus) -> JobState:
    return JobState(tenant="t", status=status, attempt=1)


def test_the_checks_of_one_instant_are_one_read_and_each_job_gets_its_state() -> None:
    store = Store({"a": _state(JobStatus.in_progress), "b": _state(JobStatus.cancelled)})
    checks = StatusChecks(store, period_s=0.5)  # type: ignore[arg-type]

    async def main() -> list[Any]:
        first = await asyncio.gather(*(checks.state(job_id) for job_id in ("a", "b", "gone")))
        second = await checks.state("a")
        return [*first, second]

    a, b, gone, again = asyncio.run(main())

    assert store.reads == [["a", "b", "gone"], ["a"]]
    assert a.status is JobStatus.in_progress and b.status is JobStatus.cancelled and gone is None
    assert again == a


def test_a_failed_read_reaches_every_check_of_its_instant() -> None:
    checks = StatusChecks(Store({}, error=RuntimeError("throttled")), period_s=0.5)  # type: ignore[arg-type]

    async def main() -> list[Any]:
        return await asyncio.gather(checks.state("a"), checks.state("b"), return_exceptions=True)

    assert [str(e) for e in asyncio.run(main())] == ["throttled", "throttled"]


class Died(BaseException):
    """What the fault suite's dead process raises from every AWS call (tests/simulation.py ProcessKilled)."""


def test_a_read_ended_by_a_base_exception_answers_every_check_waiting_and_none_waits_forever() -> None:
    """A worker killed mid-batch: the read under way raised a BaseException; the checks of its instant, and those
    asked meanwhile, got it (before, they waited for an answer that never came, and so did the invocation)."""
    store = Store({}, error=Died(), read_s=0.05)
    checks = StatusChecks(store, period_s=0.5)  # type: ignore[arg-type]

    async def main() -> list[Any]:
        first = asyncio.ensure_future(asyncio.gather(checks.state("a"), checks.state("b"), return_exceptions=True))
        await asyncio.sleep(0.04)  # the read is under way
        later = await asyncio.wait_for(asyncio.gather(checks.state("c"), return_exceptions=True), timeout=5)
        return [*await asyncio.wait_for(first, timeout=5), *later]

    assert [type(e) for e in asyncio.run(main())] == [Died, Died, Died]


def test_a_cancelled_read_cancels_the_checks_waiting_for_it() -> None:
    checks = StatusChecks(Store({}, read_s=0.2), period_s=0.5)  # type: ignore[arg-type]

    async def main() -> Any:
        waiting = asyncio.ensure_future(checks.state("a"))
        await asyncio.sleep(0.05)
        reads = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and t is not waiting]
        for read in reads:
            read.cancel()
        return await asyncio.wait_for(asyncio.gather(waiting, return_exceptions=True), timeout=5)

    [answer] = asyncio.run(main())
    assert isinstance(answer, asyncio.CancelledError)


@pytest.mark.parametrize(("now", "expected"), [(0.0, 0.5), (0.1, 0.5), (0.5, 1.0), (12.74, 13.0)])
def test_every_job_checks_at_the_same_instants(now: float, expected: float) -> None:
    assert StatusChecks(Store({}), period_s=0.5).next_check(now) == pytest.approx(expected)  # type: ignore[arg-type]


def test_checks_in_another_event_loop_are_read_in_it() -> None:
    store = Store({"a": _state(JobStatus.in_progress)})
    checks = StatusChecks(store, period_s=0.5)  # type: ignore[arg-type]

    assert asyncio.run(checks.state("a")) == asyncio.run(checks.state("a"))  # two invocations, two loops
    assert store.reads == [["a"], ["a"]]


def test_loops_in_threads_side_by_side_each_get_their_answers() -> None:
    # One worker serves several event loops at once (the local stack's worker threads): none may lose another's check.
    import threading

    store = Store({f"j{i}": _state(JobStatus.in_progress) for i in range(8)})
    checks = StatusChecks(store, period_s=0.5)  # type: ignore[arg-type]
    answers: dict[int, Any] = {}

    def thread(i: int) -> None:
        answers[i] = asyncio.run(asyncio.wait_for(checks.state(f"j{i}"), timeout=5))

    threads = [threading.Thread(target=thread, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {i: a.status for i, a in answers.items()} == dict.fromkeys(range(8), JobStatus.in_progress)


def test_a_check_asked_while_a_read_is_under_way_is_answered_by_the_next() -> None:
    store = Store({"a": _state(JobStatus.in_progress), "b": _state(JobStatus.in_progress)}, read_s=0.2)
    checks = StatusChecks(store, period_s=0.5)  # type: ignore[arg-type]

    async def main() -> list[Any]:
        first = asyncio.create_task(checks.state("a"))
        await asyncio.sleep(0.1)  # the read of "a" is under way
        return await asyncio.wait_for(asyncio.gather(first, checks.state("b")), timeout=5)

    a, b = asyncio.run(main())
    assert a.status is JobStatus.in_progress and b.status is JobStatus.in_progress
    assert store.reads == [["a"], ["b"]]
