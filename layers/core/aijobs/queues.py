"""SQS access: the jobs queue and the webhook deliveries queue."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aijobs.clock import Clock, system_clock
from aijobs.models.messages import DeliveryMessage, JobMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class _Queue:
    def __init__(self, *, queue_url: str, client: SQSClient) -> None:
        self._url = queue_url
        self._client = client

    def delay_redelivery(self, receipt_handle: str, seconds: int) -> None:
        """Make a received message visible again in ``seconds`` (0: at once)."""
        self._client.change_message_visibility(QueueUrl=self._url, ReceiptHandle=receipt_handle,
                                               VisibilityTimeout=seconds)


class JobQueue(_Queue):
    def __init__(self, *, queue_url: str, client: SQSClient, clock: Clock = system_clock) -> None:
        super().__init__(queue_url=queue_url, client=client)
        self._clock = clock

    def _body(self, job_id: str) -> str:
        return JobMessage(job_id=job_id, sent_at=self._clock()).model_dump_json()

    def send_job(self, job_id: str, *, delay_s: int = 0) -> None:
        """Send a job's message, visible in ``delay_s`` (SQS's 900 at most)."""
        if delay_s <= 0:
            self._client.send_message(QueueUrl=self._url, MessageBody=self._body(job_id))
        else:
            self._client.send_message(QueueUrl=self._url, MessageBody=self._body(job_id),
                                      DelaySeconds=min(MAX_DELAY_S, delay_s))

    def send_jobs(self, job_ids: list[str]) -> None:
        """Send in batches of ten; raises at the first message that is not sent (those before it are)."""
        for start in range(0, len(job_ids), 10):
            chunk = job_ids[start:start + 10]
            answer = self._client.send_message_batch(QueueUrl=self._url, Entries=[
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
