"""The jobs queues: a job's message goes to its priority lane's queue, and a received message's visibility is
changed on the queue it came from."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aijobs.local.stack import poller_concurrency
from aijobs.local.template import sqs_sources
from aijobs.models.jobs import Priority
from aijobs.queues import JobQueue
from aijobs.settings import Settings

URLS: dict[Priority, str] = {"high": "https://sqs.us-east-1.amazonaws.com/123456789012/aijobs-JobsHighQueue-A1",
                             "normal": "https://sqs.us-east-1.amazonaws.com/123456789012/aijobs-JobsQueue-B2",
                             "low": "https://sqs.us-east-1.amazonaws.com/123456789012/aijobs-JobsLowQueue-C3"}


def _id(n: int) -> str:
    return f"job_01JAAAAAAAAAAAAAAAAAAAA{n:03d}"


class FakeSQS:
    """Notes each call as (operation, queue URL, job ids or receipt handle); ``fail_batches`` fails one message of
    the batches sent to those queues."""

    def __init__(self, *, fail_batches: tuple[str, ...] = ()) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self._fail = fail_batches

    def send_message(self, *, QueueUrl: str, MessageBody: str, DelaySeconds: int = 0) -> dict[str, Any]:
        self.calls.append(("send", QueueUrl, (json.loads(MessageBody)["job_id"], DelaySeconds)))
        return {}

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.calls.append(("batch", QueueUrl, [json.loads(e["MessageBody"])["job_id"] for e in Entries]))
        return {"Failed": [{"Id": "0"}]} if QueueUrl in self._fail else {}

    def change_message_visibility(self, *, QueueUrl: str, ReceiptHandle: str,
                                  VisibilityTimeout: int) -> None:
        self.calls.append(("visibility", QueueUrl, (ReceiptHandle, VisibilityTimeout)))


def _queue(sqs: FakeSQS, urls: dict[Priority, str] = URLS) -> JobQueue:
    return JobQueue(queue_urls=urls, client=sqs, clock=lambda: 1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("lane", ["high", "normal", "low"])
def test_a_jobs_message_goes_to_its_lanes_queue(lane: Priority) -> None:
    sqs = FakeSQS()

    _queue(sqs).send_job(_id(1), priority=lane)
    _queue(sqs).send_job(_id(2), priority=lane, delay_s=2000)

    assert sqs.calls == [("send", URLS[lane], (_id(1), 0)), ("send", URLS[lane], (_id(2), 900))]


def test_a_lane_without_a_queue_of_its_own_shares_the_normal_one() -> None:
    sqs = FakeSQS()

    _queue(sqs, {"normal": URLS["normal"], "high": ""}).send_job(_id(1), priority="high")
    _queue(sqs, {"normal": URLS["normal"]}).send_jobs([(_id(2), "low"), (_id(3), "normal")])

    assert sqs.calls == [("send", URLS["normal"], (_id(1), 0)), ("batch", URLS["normal"], [_id(3), _id(2)])]


def test_a_batch_is_sent_lane_by_lane_high_first_in_tens() -> None:
    sqs = FakeSQS()
    low, high, normal = [_id(i) for i in range(3)], [_id(100 + i) for i in range(12)], [_id(200)]
    jobs: list[tuple[str, Priority]] = [(i, "low") for i in low] + [(i, "high") for i in high] + [(normal[0], "normal")]

    _queue(sqs).send_jobs(jobs)

    assert sqs.calls == [("batch", URLS["high"], high[:10]), ("batch", URLS["high"], high[10:]),
                         ("batch", URLS["normal"], normal), ("batch", URLS["low"], low)]


def test_a_batch_stops_at_the_first_lane_whose_message_is_not_sent() -> None:
    sqs = FakeSQS(fail_batches=(URLS["normal"],))

    with pytest.raises(RuntimeError, match="1 of 1 messages were not sent"):
        _queue(sqs).send_jobs([(_id(1), "low"), (_id(2), "normal"), (_id(3), "high")])

    assert [url for _, url, _ in sqs.calls] == [URLS["high"], URLS["normal"]]  # the low lane was never sent to


def test_a_messages_visibility_is_changed_on_the_queue_its_record_names() -> None:
    sqs = FakeSQS()
    queue = _queue(sqs)

    for name in ("aijobs-JobsLowQueue-C3", "aijobs-JobsHighQueue-A1", "some-other-queue"):
        queue.delay_redelivery(f"r-{name}", 5, f"arn:aws:sqs:us-east-1:123456789012:{name}")

    assert [(url, handle) for _, url, (handle, _) in sqs.calls] == [
        (URLS["low"], "r-aijobs-JobsLowQueue-C3"), (URLS["high"], "r-aijobs-JobsHighQueue-A1"),
        (URLS["normal"], "r-some-other-queue")]  # an ARN of none of them: the normal lane's, as before lanes


def test_settings_name_every_lanes_queue_and_each_dead_letter_queue_once() -> None:
    lanes = Settings(jobs_queue_url="n", jobs_high_queue_url="h", jobs_dead_letter_queue_url="nd",
                     jobs_low_dead_letter_queue_url="ld")
    single = Settings(jobs_queue_url="n", jobs_dead_letter_queue_url="nd", jobs_low_dead_letter_queue_url="nd")

    assert lanes.jobs_queue_urls == {"high": "h", "normal": "n", "low": ""}
    assert lanes.jobs_dead_letter_queue_urls == ["nd", "ld"]
    assert single.jobs_dead_letter_queue_urls == ["nd"]


def test_the_local_stack_polls_each_lane_with_its_share_of_the_local_worker_concurrency(
        template: dict[str, Any]) -> None:
    lanes = {s.queue: s for s in sqs_sources(template) if s.function == "WorkerFunction"}
    widest = max(s.max_concurrency or 0 for s in lanes.values())

    assert lanes.keys() == {"JobsHighQueue", "JobsQueue", "JobsLowQueue"}
    local = {queue: poller_concurrency(s, {}, widest=widest) for queue, s in lanes.items()}
    assert local == {"JobsHighQueue": 1, "JobsQueue": 2, "JobsLowQueue": 1}  # of 5, 10 and 2 in AWS
    assert poller_concurrency(lanes["JobsQueue"], {"AIJOBS_LOCAL_WORKER_CONCURRENCY": "4"}, widest=widest) == 4
