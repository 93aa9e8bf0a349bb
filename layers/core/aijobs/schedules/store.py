"""DynamoDB access for schedules (items of dynamo.py's table)."""

from __future__ import annotations

from typing import Any

from aijobs.dynamo import TENANT_INDEX, Page, conditional, query_index, schedule_key, schedules_partition, to_attributes
from aijobs.errors import Conflict
from aijobs.models.schedules import Schedule


def _to_item(schedule: Schedule) -> dict[str, Any]:
    return {**schedule_key(schedule.id), "gsi1pk": schedules_partition(schedule.tenant), "gsi1sk": schedule.id,
            **to_attributes(schedule)}


class ScheduleStore:
    def __init__(self, *, table: Any) -> None:
        self._table = table

    def put_new_schedule(self, schedule: Schedule) -> None:
        self._table.put_item(Item=_to_item(schedule), ConditionExpression="attribute_not_exists(pk)")

    def get_schedule(self, schedule_id: str) -> Schedule | None:
        # Consistent: a fire or a PATCH right after a change must see it.
        item = self._table.get_item(Key=schedule_key(schedule_id), ConsistentRead=True).get("Item")
        return Schedule.model_validate(item) if item else None

    def replace_schedule(self, schedule: Schedule, *, expected_version: int) -> None:
        """Write a changed schedule over the version it was read at; ``Conflict`` if it changed meanwhile."""
        if conditional(self._table.put_item, Item=_to_item(schedule), ConditionExpression="version = :v",
                       ExpressionAttributeValues={":v": expected_version}) is None:
            raise Conflict("the schedule changed or was deleted meanwhile; read it and try again",
                           code="schedule_changed", retryable=True)

    def delete_schedule(self, schedule_id: str) -> None:
        self._table.delete_item(Key=schedule_key(schedule_id))

    def list_schedules(self, *, tenant: str, limit: int, cursor: str | None) -> Page[Schedule]:
        """A tenant's schedules, newest first."""
        page = query_index(self._table, index=TENANT_INDEX, partition=schedules_partition(tenant), limit=limit,
                           cursor=cursor)
        return Page([Schedule.model_validate(item) for item in page.items], page.next_cursor)
