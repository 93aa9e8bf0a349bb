"""SQS access: the jobs queue and the webhook deliveries queue."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    def send_job(self, job_id: str) -> None:
        self._client.send_message(QueueUrl=self._url, MessageBody=JobMessage(job_id=job_id).model_dump_json())

    def send_jobs(self, job_ids: list[str]) -> list[str]:
        """Send in batches of ten; returns the ids whose message could not be sent."""
        failed: list[str] = []
        for start in range(0, len(job_ids), 10):
            chunk = job_ids[start:start + 10]
            answer = self._client.send_message_batch(QueueUrl=self._url, Entries=[
                {"Id": str(i), "MessageBody": JobMessage(job_id=job_id).model_dump_json()}
                for i, job_id in enumerate(chunk)
            ])
            failed += [chunk[int(entry["Id"])] for entry in answer.get("Failed", [])]
        return failed


# SQS delays a message by 15 minutes at most; longer waits are chained (the message carries its due time).
MAX_DELAY_S = 900


class DeliveryQueue(_Queue):
    def send_delivery(self, message: DeliveryMessage, *, delay_s: int = 0) -> None:
        self._client.send_message(QueueUrl=self._url, MessageBody=message.model_dump_json(),
                                  DelaySeconds=max(0, min(MAX_DELAY_S, delay_s)))
