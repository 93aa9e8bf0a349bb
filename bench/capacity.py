"""DynamoDB request units and SQS billed requests, computed from the items and payloads a request touched.

Item size (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html):
the sum over attributes of the UTF-8 length of the name plus the value's size. A string is its UTF-8 length,
a number about one byte per two significant digits plus one, binary its raw length, a boolean or null one
byte, a list or map 3 bytes plus its elements with one byte each (map elements also count their names).

On-demand units (https://aws.amazon.com/dynamodb/pricing/on-demand/):
- a write costs ceil(size / 1 KB) WRU, at least 1, where size is the larger of the item before and after
  (a delete: the item before; a failed conditional write still costs at least 1);
- each global secondary index the write changes costs the same rule on the projected entry: 1 write when
  the entry appears, disappears or its projected attributes change, 2 when its index key changes;
- a read costs ceil(size / 4 KB) RRU for a strongly consistent read and half that for an eventually
  consistent one, at least one 4 KB block even when the item is absent; a query sums the items it returns
  before rounding.
SQS (https://aws.amazon.com/sqs/pricing/): every API request is billed per 64 KB chunk of its payload.
"""

from __future__ import annotations

import base64
import math
from decimal import Decimal
from typing import Any

KB = 1024
WRITE_BLOCK = 1 * KB
READ_BLOCK = 4 * KB
SQS_CHUNK = 64 * KB

CAPACITY_RULES = [
    "item size = sum of UTF-8 attribute-name lengths + value sizes (string: UTF-8 bytes; number: "
    "ceil(significant digits / 2) + 1; bool/null: 1; list/map: 3 + 1 per element + elements)",
    "write: ceil(max(size before, size after) / 1 KB) WRU, minimum 1 (delete: size before); in a transaction, twice "
    "that for each item",
    "GSI: +1 write of the projected entry when it appears, disappears or changes; +2 when its key changes",
    "read: ceil(size / 4 KB) RRU x1 strongly consistent, x0.5 eventually consistent; a missing item "
    "still costs one 4 KB block; a query rounds the sum of the items it returns",
    "SQS: each request is ceil(payload / 64 KB) billed requests, minimum 1",
]


def number_size(text: str) -> int:
    digits = Decimal(text).normalize().as_tuple().digits  # leading and trailing zeros trimmed
    return math.ceil(max(len(digits), 1) / 2) + 1


def value_size(value: dict[str, Any]) -> int:
    """Size in bytes of one attribute value in DynamoDB's wire format ({"S": "..."}, {"N": "1"}, ...)."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return number_size(data)
    if kind == "B":
        return len(base64.b64decode(data))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in data)
    if kind == "NS":
        return sum(number_size(n) for n in data)
    if kind == "BS":
        return sum(len(base64.b64decode(b)) for b in data)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in data)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in data.items())
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / WRITE_BLOCK))


def read_units(size: int, *, consistent: bool) -> float:
    blocks = max(1, math.ceil(size / READ_BLOCK))
    return float(blocks) if consistent else blocks / 2


def sqs_billed_requests(payload_bytes: int) -> int:
    return max(1, math.ceil(payload_bytes / SQS_CHUNK))


def projected(item: dict[str, Any] | None, index: dict[str, Any], table_keys: list[str]) -> dict[str, Any] | None:
    """The entry ``item`` has in a global secondary index, or None when the item is not in the index (sparse)."""
    index_keys = [k["AttributeName"] for k in index["KeySchema"]]
    if item is None or any(k not in item for k in index_keys):
        return None
    projection = index.get("Projection", {})
    if projection.get("ProjectionType", "ALL") == "ALL":
        return item
    names = set(table_keys) | set(index_keys) | set(projection.get("NonKeyAttributes", []))
    return {k: v for k, v in item.items() if k in names}


def index_write_units(old: dict[str, Any] | None, new: dict[str, Any] | None, index: dict[str, Any],
                      table_keys: list[str]) -> int:
    before, after = projected(old, index, table_keys), projected(new, index, table_keys)
    if before == after:
        return 0
    if before is None or after is None:
        return write_units(item_size(before or after))
    index_keys = [k["AttributeName"] for k in index["KeySchema"]]
    if any(before[k] != after[k] for k in index_keys):
        return write_units(item_size(before)) + write_units(item_size(after))
    return write_units(max(item_size(before), item_size(after)))
