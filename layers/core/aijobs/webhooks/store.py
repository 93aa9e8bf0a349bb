"""DynamoDB access for webhooks, in the jobs table: tenants' signing secrets, the delivery ledger, and the
marks on a job that say which final event it has and whether that event's delivery is queued.

| item | pk | sk |
|---|---|---|
| tenant | ``TENANT#<t>`` | ``TENANT`` |
| signing secret | ``TENANT#<t>`` | ``WHSEC#<ulid>`` (newest last) |
| delivery attempt | ``JOB#<id>`` | ``DELIVERY#<webhook id>#<attempt 0-padded>`` |
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from aijobs.ids import new_ulid
from aijobs.models import DeliveryAttempt, DeliveryMessage, Job, WebhookSecret
from aijobs.webhooks.signing import event_type, new_webhook_secret


def _now() -> int:
    return int(time.time())


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response["Error"]["Code"] == "ConditionalCheckFailedException"


def _attempt_key(job_id: str, webhook_id: str, attempt: int) -> dict[str, str]:
    return {"pk": f"JOB#{job_id}", "sk": f"DELIVERY#{webhook_id}#{attempt:04d}"}


def new_webhook_id() -> str:
    return f"msg_{new_ulid()}"


def terminal_instance(job: Job) -> str:
    """Which terminal state of the job an event is for: an explicit retry that ends again is a new event."""
    return f"{job.status.value}#{job.attempt}#{job.completed_at}"


class WebhookStore:
    def __init__(self, *, table: Any) -> None:
        self._table = table

    # --- tenants and signing secrets --------------------------------------------------------------

    def create_tenant(self, tenant: str) -> bool:
        """Create the tenant with its first signing secret; False (and nothing written) if it exists."""
        try:
            self._table.put_item(Item={"pk": f"TENANT#{tenant}", "sk": "TENANT", "tenant": tenant,
                                       "created_at": _now()}, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        self._put_secret(tenant)
        return True

    def _put_secret(self, tenant: str) -> WebhookSecret:
        ulid = new_ulid()
        secret = WebhookSecret(id=f"whs_{ulid}", secret=new_webhook_secret(), created_at=_now())
        self._table.put_item(Item={"pk": f"TENANT#{tenant}", "sk": f"WHSEC#{ulid}", **secret.model_dump()},
                             ConditionExpression="attribute_not_exists(pk)")
        return secret

    def _secrets(self, tenant: str) -> list[WebhookSecret]:
        answer = self._table.query(
            KeyConditionExpression=Key("pk").eq(f"TENANT#{tenant}") & Key("sk").begins_with("WHSEC#"),
            ScanIndexForward=False, ConsistentRead=True)
        now = _now()
        return [WebhookSecret.model_validate(item) for item in answer["Items"]
                if item.get("expires_at") is None or int(item["expires_at"]) > now]

    def active_secrets(self, tenant: str) -> list[WebhookSecret]:
        """The tenant's active secrets, newest first; a tenant from before webhooks gets its first one now."""
        return self._secrets(tenant) or [self._put_secret(tenant)]

    def rotate_secret(self, tenant: str, *, overlap_s: int) -> WebhookSecret:
        """A new secret; the ones it replaces stay valid for ``overlap_s`` (an earlier expiry is kept)."""
        previous = self._secrets(tenant)
        new = self._put_secret(tenant)
        expires = _now() + overlap_s
        for old in previous:
            if old.expires_at is None or old.expires_at > expires:
                # expires_at is the table's TTL attribute: DynamoDB removes the secret some time after.
                self._table.update_item(Key={"pk": f"TENANT#{tenant}", "sk": f"WHSEC#{old.id[4:]}"},
                                        UpdateExpression="SET expires_at = :e",
                                        ExpressionAttributeValues={":e": expires})
        return new

    # --- a job's final event ----------------------------------------------------------------------

    def ensure_event(self, job: Job) -> tuple[str, bool] | None:
        """The webhook id of the job's current terminal state and whether its delivery is queued.

        The id is made once per terminal state, with a conditional write, so concurrent callers agree on it.
        None when the job has moved on (it is no longer in the state that was read).
        """
        instance = terminal_instance(job)
        if job.webhook_event_for == instance and job.webhook_event_id:
            return job.webhook_event_id, job.webhook_enqueued
        webhook_id = new_webhook_id()
        same_state = "#s = :status AND attempt = :attempt AND " + (
            "completed_at = :completed" if job.completed_at is not None else "attribute_not_exists(completed_at)")
        values: dict[str, Any] = {":id": webhook_id, ":for": instance, ":no": False,
                                  ":status": job.status.value, ":attempt": job.attempt}
        if job.completed_at is not None:
            values[":completed"] = job.completed_at
        try:
            self._table.update_item(
                Key={"pk": f"JOB#{job.id}", "sk": "JOB"},
                UpdateExpression="SET webhook_event_id = :id, webhook_event_for = :for, webhook_enqueued = :no",
                ConditionExpression=f"{same_state} AND (attribute_not_exists(webhook_event_for) "
                                    "OR webhook_event_for <> :for)",
                ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues=values)
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            item = self._table.get_item(Key={"pk": f"JOB#{job.id}", "sk": "JOB"}, ConsistentRead=True).get("Item")
            if item and item.get("webhook_event_for") == instance:  # another caller made it first
                return str(item["webhook_event_id"]), bool(item.get("webhook_enqueued"))
            return None
        return webhook_id, False

    def mark_enqueued(self, job_id: str, webhook_id: str) -> None:
        try:
            self._table.update_item(Key={"pk": f"JOB#{job_id}", "sk": "JOB"},
                                    UpdateExpression="SET webhook_enqueued = :yes",
                                    ConditionExpression="webhook_event_id = :id",
                                    ExpressionAttributeValues={":yes": True, ":id": webhook_id})
        except ClientError as exc:
            if not _is_condition_failure(exc):  # the job moved on to another event: nothing to mark
                raise

    # --- the delivery ledger ----------------------------------------------------------------------

    def claim_attempt(self, message: DeliveryMessage, job: Job, *, lease_s: int) -> str | None:
        """Record an attempt as in flight; None if it exists already (a duplicate message) and its lease holds.

        An attempt whose sender died keeps its lease only so long: then the next copy of the message takes it over.
        """
        now = _now()
        token = secrets.token_hex(8)
        item = {**_attempt_key(job.id, message.webhook_id, message.attempt), "webhook_id": message.webhook_id,
                "event_type": event_type(job), "attempt": message.attempt, "first_attempt": message.first_attempt,
                "at": now, "outcome": "sending", "lease_until": now + lease_s, "token": token}
        if job.expires_at is not None:
            item["expires_at"] = job.expires_at  # the ledger goes with its job
        try:
            self._table.put_item(
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR (outcome = :sending AND lease_until < :now)",
                ExpressionAttributeValues={":sending": "sending", ":now": now})
        except ClientError as exc:
            if _is_condition_failure(exc):
                return None
            raise
        return token

    def record_attempt(self, message: DeliveryMessage, *, token: str, outcome: str, status_code: int | None,
                       duration_ms: int, error: str | None, next_attempt_at: int | None) -> bool:
        """Write an attempt's result; False if another sender took the attempt over meanwhile."""
        values: dict[str, Any] = {":outcome": outcome, ":ms": duration_ms, ":token": token}
        sets = ["outcome = :outcome", "duration_ms = :ms"]
        for name, value in (("status_code", status_code), ("#e", error), ("next_attempt_at", next_attempt_at)):
            if value is not None:
                sets.append(f"{name} = :{name.strip('#')}")
                values[f":{name.strip('#')}"] = value
        try:
            self._table.update_item(
                Key=_attempt_key(message.job_id, message.webhook_id, message.attempt),
                UpdateExpression=f"SET {', '.join(sets)} REMOVE lease_until, #t",
                ConditionExpression="#t = :token",
                ExpressionAttributeNames={"#t": "token", **({"#e": "error"} if error is not None else {})},
                ExpressionAttributeValues=values)
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def get_attempt(self, job_id: str, webhook_id: str, attempt: int) -> dict[str, Any] | None:
        item = self._table.get_item(Key=_attempt_key(job_id, webhook_id, attempt), ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def list_attempts(self, job_id: str) -> list[DeliveryAttempt]:
        """Every attempt of every event of the job, oldest first."""
        items: list[dict[str, Any]] = []
        query: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(f"JOB#{job_id}") & Key("sk").begins_with("DELIVERY#"),
            "ConsistentRead": True}
        while True:
            answer = self._table.query(**query)
            items += answer["Items"]
            if not (start := answer.get("LastEvaluatedKey")):
                return [DeliveryAttempt.model_validate(item) for item in items]
            query["ExclusiveStartKey"] = start

    def last_attempt(self, job_id: str, webhook_id: str) -> int:
        answer = self._table.query(
            KeyConditionExpression=Key("pk").eq(f"JOB#{job_id}") & Key("sk").begins_with(f"DELIVERY#{webhook_id}#"),
            ScanIndexForward=False, Limit=1, ConsistentRead=True, ProjectionExpression="attempt")
        return int(answer["Items"][0]["attempt"]) if answer["Items"] else 0
