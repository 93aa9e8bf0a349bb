"""DynamoDB access for webhooks: tenants' signing secrets and the delivery ledger (items of dynamo.py's table).

The job item's webhook marks (which final event it has, whether that event is queued) belong to ``JobStore``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.conditions import Key

from aijobs.clock import Clock, system_clock
from aijobs.dynamo import (
    SECRET_PREFIX,
    Page,
    conditional,
    delivery_key,
    delivery_prefix,
    job_key,
    query_index,
    secret_key,
    tenant_partition,
    update_request,
)
from aijobs.ids import new_ulid
from aijobs.models.messages import DeliveryMessage
from aijobs.models.webhooks import DeliveryAttempt, WebhookSecret
from aijobs.webhooks.signing import new_webhook_secret


@dataclass(frozen=True)
class AttemptClaim:
    """An attempt this sender holds: its ledger row, and the token that proves it."""

    sk: str
    token: str


# Active signing secrets per tenant: each webhook carries one signature per active secret.
MAX_ACTIVE_SECRETS = 3


class WebhookStore:
    def __init__(self, *, table: Any, clock: Clock = system_clock) -> None:
        self._table = table
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock())

    # --- signing secrets --------------------------------------------------------------------------

    def put_secret(self, tenant: str) -> WebhookSecret:
        """A new active secret for the tenant."""
        ulid = new_ulid()
        secret = WebhookSecret(id=f"whs_{ulid}", secret=new_webhook_secret(), created_at=self._now())
        self._table.put_item(Item={**secret_key(tenant, ulid), **secret.model_dump()},
                             ConditionExpression="attribute_not_exists(pk)")
        return secret

    def _secrets(self, tenant: str) -> list[WebhookSecret]:
        answer = self._table.query(
            KeyConditionExpression=Key("pk").eq(tenant_partition(tenant)) & Key("sk").begins_with(SECRET_PREFIX),
            ScanIndexForward=False, ConsistentRead=True)
        now = self._now()
        return [WebhookSecret.model_validate(item) for item in answer["Items"]
                if item.get("expires_at") is None or int(item["expires_at"]) > now]

    def active_secrets(self, tenant: str) -> list[WebhookSecret]:
        """The tenant's active secrets, newest first; a tenant from before webhooks gets its first one now."""
        return self._secrets(tenant) or [self.put_secret(tenant)]

    def rotate_secret(self, tenant: str, *, overlap_s: int) -> WebhookSecret:
        """A new secret; the ones it replaces stay valid for ``overlap_s`` (an earlier expiry is kept).

        At most ``MAX_ACTIVE_SECRETS`` stay active, the new one included: a rotation retires the oldest at once.
        """
        previous = self._secrets(tenant)  # newest first
        new = self.put_secret(tenant)
        kept, retired = previous[:MAX_ACTIVE_SECRETS - 1], previous[MAX_ACTIVE_SECRETS - 1:]
        for old in retired:
            self._table.delete_item(Key=secret_key(tenant, old.id.removeprefix("whs_")))
        expires = self._now() + overlap_s
        for old in kept:
            if old.expires_at is None or old.expires_at > expires:
                # expires_at is the table's TTL attribute: DynamoDB removes the secret some time after.
                self._table.update_item(Key=secret_key(tenant, old.id.removeprefix("whs_")),
                                        **update_request(set={"expires_at": expires}))
        return new

    # --- the delivery ledger ----------------------------------------------------------------------

    def claim_attempt(self, message: DeliveryMessage, *, event_type: str, expires_at: int | None,
                      lease_s: int) -> AttemptClaim | None:
        """Record an attempt as in flight; None if it is made already (a duplicate message) or in flight.

        An attempt whose sender died keeps its lease only so long: then the next copy of the message takes it
        over, and the ledger keeps both rows (the first one ``abandoned``: its receiver may have got the event).
        The attempt expires with its job (``expires_at``).
        """
        now = self._now()
        row = {"webhook_id": message.webhook_id, "event_type": event_type, "attempt": message.attempt,
               "first_attempt": message.first_attempt, "at": now, "outcome": "sending", "lease_until": now + lease_s}
        if message.endpoint_id is not None:
            row["endpoint_id"] = message.endpoint_id
        if expires_at is not None:
            row["expires_at"] = expires_at
        key = delivery_key(message.job_id, message.webhook_id, message.attempt)
        if (claim := self._put_attempt(key, row)) is not None:
            return claim
        latest = self._latest(message.job_id, message.webhook_id, message.attempt)
        if latest is None or latest["outcome"] != "sending" or int(latest.get("lease_until", 0)) >= now:
            return None  # made already, or its sender is still within its lease
        abandoned = conditional(self._table.update_item, Key={"pk": latest["pk"], "sk": latest["sk"]},
                                **update_request(set={"outcome": "abandoned", "error": "sender_lost"},
                                                 remove=("lease_until", "token"),
                                                 condition="#outcome = :sending AND #token = :token",
                                                 values={":sending": "sending", ":token": latest["token"]}))
        if abandoned is None:
            return None  # another copy took it over first
        retake = int(str(latest["sk"])[len(key["sk"]) + 1:] or 0) + 1  # the attempt's row, then #01, #02...
        return self._put_attempt({**key, "sk": f"{key['sk']}#{retake:02d}"}, row)

    def _put_attempt(self, key: dict[str, str], row: dict[str, Any]) -> AttemptClaim | None:
        token = secrets.token_hex(8)
        put = conditional(self._table.put_item, Item={**key, **row, "token": token},
                          ConditionExpression="attribute_not_exists(pk)")
        return AttemptClaim(sk=key["sk"], token=token) if put is not None else None

    def _latest(self, job_id: str, webhook_id: str, attempt: int) -> dict[str, Any] | None:
        """The last row of one attempt (the attempt itself, or its latest takeover)."""
        answer = self._table.query(
            KeyConditionExpression=Key("pk").eq(job_key(job_id)["pk"])
            & Key("sk").begins_with(delivery_key(job_id, webhook_id, attempt)["sk"]),
            ScanIndexForward=False, Limit=1, ConsistentRead=True)
        return dict(answer["Items"][0]) if answer["Items"] else None

    def record_attempt(self, message: DeliveryMessage, *, claim: AttemptClaim, outcome: str,
                       status_code: int | None, duration_ms: int, error: str | None,
                       next_attempt_at: int | None) -> bool:
        """Write an attempt's result; False if another sender took the attempt over meanwhile."""
        result = {"outcome": outcome, "duration_ms": duration_ms, "status_code": status_code, "error": error,
                  "next_attempt_at": next_attempt_at}
        return conditional(self._table.update_item, Key={"pk": job_key(message.job_id)["pk"], "sk": claim.sk},
                           **update_request(set={k: v for k, v in result.items() if v is not None},
                                            remove=("lease_until", "token"), condition="#token = :token",
                                            values={":token": claim.token})) is not None

    def get_attempt(self, job_id: str, webhook_id: str, attempt: int) -> DeliveryAttempt | None:
        """The attempt as it stands (its latest takeover, if it was taken over)."""
        latest = self._latest(job_id, webhook_id, attempt)
        return DeliveryAttempt.model_validate(latest) if latest else None

    def list_attempts(self, job_id: str, *, limit: int, cursor: str | None) -> Page[DeliveryAttempt]:
        """One page of every attempt of every event of the job, oldest first."""
        page = query_index(self._table, index=None, partition=job_key(job_id)["pk"], sort_prefix=delivery_prefix(),
                           limit=limit, cursor=cursor, newest_first=False, consistent=True)
        return Page([DeliveryAttempt.model_validate(item) for item in page.items], page.next_cursor)

    def last_attempt(self, job_id: str, webhook_id: str) -> int:
        answer = self._table.query(
            KeyConditionExpression=Key("pk").eq(job_key(job_id)["pk"])
            & Key("sk").begins_with(delivery_prefix(webhook_id)),
            ScanIndexForward=False, Limit=1, ConsistentRead=True, ProjectionExpression="attempt")
        return int(answer["Items"][0]["attempt"]) if answer["Items"] else 0
