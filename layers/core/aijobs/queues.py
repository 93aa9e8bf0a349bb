"""SQS access: the jobs queues (one a priority lane) and the webhook deliveries queue."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, get_args

from aijobs.clock import Clock, system_clock
from aijobs.models.jobs import Priority
from aijobs.models.messages import DeliveryMessage, JobMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

LANES: tuple[Priority, ...] = get_args(Priority)  # high first


class _Queue:
    def __init__(self, *, queue_url: str, client: SQSClient) -> None:
        self._url = queue_url
        self._client = client

    def _url_of(self, queue_arn: str | None) -> str:  # one queue: every message came from it
        return self._url

    def delay_redelivery(self, receipt_handle: str, seconds: int, queue_arn: str | None = None) -> None:
        """Make a received message visible again in ``seconds`` (0: at once); ``queue_arn``: the queue it came from
        (its record's ``eventSourceARN``), for a receipt handle is good only on that queue."""
        self._client.change_message_visibility(QueueUrl=self._url_of(queue_arn), ReceiptHandle=receipt_handle,
                                               VisibilityTimeout=seconds)


class JobQueue(_Queue):
    """The jobs queues, one a lane (``Priority``): a job's message goes to its lane's queue, and each queue has its
    own event source on the worker, so a backlog in one lane never delays another. A lane with no URL of its own
    (a single-queue setup) shares the normal lane's queue."""

    def __init__(self, *, queue_urls: Mapping[Priority, str], client: SQSClient, clock: Clock = system_clock) -> None:
        super().__init__(queue_url=queue_urls["normal"], client=client)
        self._clock = clock
        self._lanes: dict[Priority, str] = {lane: queue_urls.get(lane) or self._url for lane in LANES}
        # A record names its queue by ARN, a send by URL: both end with the queue's name.
        self._by_name = {url.rstrip("/").rsplit("/", 1)[-1]: url for url in self._lanes.values()}

    def _url_of(self, queue_arn: str | None) -> str:
        """The URL of the lane whose queue ``queue_arn`` names; the normal lane's for an ARN of none of them."""
        return self._by_name.get((queue_arn or "").rsplit(":", 1)[-1], self._url)

    def _body(self, job_id: str) -> str:
        return JobMessage(job_id=job_id, sent_at=self._clock()).model_dump_json()

    def send_job(self, job_id: str, *, priority: Priority = "normal", delay_s: int = 0) -> None:
        """Send a job's message to its lane, visible in ``delay_s`` (SQS's 900 at most)."""
        url = self._lanes[priority]
        if delay_s <= 0:
            self._client.send_message(QueueUrl=url, MessageBody=self._body(job_id))
        else:
            self._client.send_message(QueueUrl=url, MessageBody=self._body(job_id),
                                      DelaySeconds=min(MAX_DELAY_S, delay_s))

    def send_jobs(self, jobs: list[tuple[str, Priority]]) -> None:
        """Send ``(job_id, priority)`` messages, each lane's in batches of ten, high first; raises at the first
        message that is not sent (those before it are)."""
        by_queue: dict[str, list[str]] = {}
        for job_id, priority in sorted(jobs, key=lambda job: LANES.index(job[1])):
            by_queue.setdefault(self._lanes[priority], []).append(job_id)
        for url, job_ids in by_queue.items():
            for start in range(0, len(job_ids), 10):
                chunk = job_ids[start:start + 10]
                answer = self._client.send_message_batch(QueueUrl=url, Entries=[
                    {"Id": str(i), "MessageBody": self._body(job_id)} for i, job_id in enumerate(chunk)])
                if answer.get("Failed"):
                    raise RuntimeError(f"{len(answer['Failed'])} of {len(chunk)} messages were not sent")


# SQS delays a message by 15 minutes at most; longer waits are chained (the message carries its due time).
MAX_DELAY_S = 900


class DeliveryQueue(_Queue):
    def send_delivery(self, message: DeliveryMessage, *, delay_s: int = 0) -> None:
        # None fields left out: a callback_url's message reads as it did before webhook endpoints
        self._client.send_message(QueueUrl=self._url, MessageBody=message.model_dump_json(exclude_none=True),
                                  DelaySeconds=max(0, min(MAX_DELAY_S, delay_s)))
