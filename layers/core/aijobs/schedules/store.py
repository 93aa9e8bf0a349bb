"""DynamoDB access for schedules, in the jobs table."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from aijobs.errors import Conflict
from aijobs.models import Schedule
from aijobs.store import _decode_cursor, _encode_cursor

_INDEX = "gsi1"


def _key(schedule_id: str) -> dict[str, str]:
    return {"pk": f"SCHEDULE#{schedule_id}", "sk": "SCHEDULE"}


def _partition(tenant: str) -> str:
    return f"SCHEDULES#{tenant}"


def _to_item(schedule: Schedule) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(schedule.model_dump_json(exclude_none=True), parse_float=Decimal)
    return {**_key(schedule.id), "gsi1pk": _partition(schedule.tenant), "gsi1sk": schedule.id, **data}


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response["Error"]["Code"] == "ConditionalCheckFailedException"


class ScheduleStore:
    def __init__(self, *, table: Any) -> None:
        self._table = table

    def put_new_schedule(self, schedule: Schedule) -> None:
        self._table.put_item(Item=_to_item(schedule), ConditionExpression="attribute_not_exists(pk)")

    def get_schedule(self, schedule_id: str) -> Schedule | None:
        # Consistent: a fire or a PATCH right after a change must see it.
        item = self._table.get_item(Key=_key(schedule_id), ConsistentRead=True).get("Item")
        return Schedule.model_validate(item) if item else None

    def replace_schedule(self, schedule: Schedule, *, expected_version: int) -> None:
        """Write a changed schedule over the version it was read at; ``Conflict`` if it changed meanwhile."""
        try:
            self._table.put_item(Item=_to_item(schedule), ConditionExpression="version = :v",
                                 ExpressionAttributeValues={":v": expected_version})
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise Conflict("the schedule changed or was deleted meanwhile; read it and try again",
                               code="schedule_changed", retryable=True) from None
            raise

    def delete_schedule(self, schedule_id: str) -> None:
        self._table.delete_item(Key=_key(schedule_id))

    def list_schedules(self, *, tenant: str, limit: int, cursor: str | None) -> tuple[list[Schedule], str | None]:
        """A tenant's schedules, newest first."""
        query: dict[str, Any] = {"IndexName": _INDEX, "KeyConditionExpression": Key("gsi1pk").eq(_partition(tenant)),
                                 "ScanIndexForward": False, "Limit": limit}
        if cursor:
            query["ExclusiveStartKey"] = _decode_cursor(cursor, _INDEX, _partition(tenant))
        answer = self._table.query(**query)
        start = answer.get("LastEvaluatedKey")
        return [Schedule.model_validate(item) for item in answer["Items"]], _encode_cursor(start) if start else None
