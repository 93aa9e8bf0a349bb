"""The one SQS adapter: outcomes become deletions, visibility changes and batch item failures."""

from __future__ import annotations

import json
from typing import Any

from aijobs.local.pollers import FakeLambdaContext
from aijobs.models.messages import JobMessage
from aijobs.outcomes import DONE, Outcome, Poison, RetryIn
from aijobs.sqs_batch import process_batch
from tests.helpers import load_event

IDS = ["job_01JAAAAAAAAAAAAAAAAAAAAAA1", "job_01JAAAAAAAAAAAAAAAAAAAAAA2", "job_01JAAAAAAAAAAAAAAAAAAAAAA3"]


def _event(*bodies: str) -> dict[str, Any]:
    template = load_event("sqs_job")["Records"][0]
    return {"Records": [{**template, "messageId": f"m{i}", "receiptHandle": f"r{i}", "body": body}
                        for i, body in enumerate(bodies)]}


def _run(event: dict[str, Any], outcomes: dict[str, Outcome | Exception],
         queues: dict[str, str] | None = None) -> tuple[list[str], dict[str, int]]:
    """The failed records, and the visibility each redelivered one was given; ``queues`` notes the queue ARN each
    visibility change named."""
    visibility: dict[str, int] = {}
    queues = {} if queues is None else queues

    def redeliver_in(handle: str, seconds: int, queue_arn: str) -> None:
        visibility[handle] = seconds
        queues[handle] = queue_arn

    async def run(message: JobMessage) -> Outcome:
        outcome = outcomes[message.job_id]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    answer = process_batch(event, FakeLambdaContext("WorkerFunction"), body=JobMessage, run=run,
                           redeliver_in=redeliver_in)
    return [f["itemIdentifier"] for f in answer["batchItemFailures"]], visibility


def test_done_is_deleted_and_retry_comes_back_after_its_delay() -> None:
    event = _event(*(json.dumps({"job_id": i}) for i in IDS))

    failed, visibility = _run(event, {IDS[0]: DONE, IDS[1]: RetryIn(30), IDS[2]: Poison("bad job")})

    assert failed == ["m1", "m2"]
    assert visibility == {"r1": 30, "r2": 0}  # poison is back at once, on its way to the dead-letter queue


def test_an_unparseable_body_fails_alone_and_is_made_visible_at_once() -> None:
    event = _event(json.dumps({"job_id": IDS[0]}), "not json", json.dumps({"job_id": "job_short"}))

    failed, visibility = _run(event, {IDS[0]: DONE})

    assert failed == ["m1", "m2"] and visibility == {"r1": 0, "r2": 0}


def test_an_unexpected_error_fails_the_record_and_leaves_its_visibility_to_sqs() -> None:
    event = _event(json.dumps({"job_id": IDS[0]}), json.dumps({"job_id": IDS[1]}))

    failed, visibility = _run(event, {IDS[0]: ConnectionError("DynamoDB is unreachable"), IDS[1]: DONE})

    assert failed == ["m0"] and visibility == {}


def test_a_visibility_change_names_the_queue_each_record_came_from() -> None:
    event = _event(json.dumps({"job_id": IDS[0]}), json.dumps({"job_id": IDS[1]}), "not json")
    lanes = ["arn:aws:sqs:us-east-1:123456789012:aijobs-JobsHighQueue",
             "arn:aws:sqs:us-east-1:123456789012:aijobs-JobsLowQueue",
             "arn:aws:sqs:us-east-1:123456789012:aijobs-JobsQueue"]
    for record, arn in zip(event["Records"], lanes, strict=True):
        record["eventSourceARN"] = arn  # one function fed by several queues: their records come mixed
    queues: dict[str, str] = {}

    _run(event, {IDS[0]: RetryIn(5), IDS[1]: Poison("bad job")}, queues)

    assert queues == {"r0": lanes[0], "r1": lanes[1], "r2": lanes[2]}
