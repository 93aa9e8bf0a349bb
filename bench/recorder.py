"""Counts every AWS request a boto3 session makes, with botocore event hooks, and prices it in request units.

``before-call`` sees the serialized request and ``after-call`` the raw response of every API call made by any
client created from the session afterwards (boto3 copies the session's event emitter into each new client,
the Powertools idempotency layer's own client included). For DynamoDB writes the item is read before and
after the call through a separate, unhooked client, so the units follow the real before and after images.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from bench.capacity import (
    index_write_units,
    item_size,
    read_units,
    sqs_billed_requests,
    write_units,
)

_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
_READS = {"GetItem", "BatchGetItem", "Query", "Scan"}
_UNPRICED_DATA = {"TransactGetItems", "ExecuteStatement", "BatchExecuteStatement"}


@dataclass
class Call:
    """One AWS API request, as seen by the hooks."""

    phase: str
    service: str
    operation: str
    target: str  # table or queue, by the template's logical id when known
    kind: str  # what it touched: "JOB", "KEY", "idempotency", "message", ...
    status: int
    wru: int = 0  # base table
    gsi_wru: int = 0
    rru: float = 0.0
    sqs_billed: int = 0
    item_bytes: int = 0  # largest item written or read (a write: before or after)

    @property
    def label(self) -> str:
        return f"{self.service}.{self.operation} {self.target}"


@dataclass
class _TableInfo:
    keys: list[str]
    indexes: list[dict[str, Any]]


class AwsRecorder:
    """Records the calls of every client of the sessions it is attached to, while ``phase`` is set."""

    def __init__(self, *, probe: Any, names: dict[str, str]) -> None:
        self._probe = probe  # an unhooked DynamoDB client on the same backend
        self._names = names  # physical name or URL -> logical id
        self._tables: dict[str, _TableInfo] = {}
        self._lock = threading.Lock()
        self.phase: str | None = None
        self.calls: list[Call] = []

    def attach(self, session: Any) -> None:
        """Hook a boto3 session; only clients created after this are seen."""
        session.events.register("before-call", self._before)
        session.events.register("after-call", self._after)

    def take(self) -> list[Call]:
        with self._lock:
            calls, self.calls = self.calls, []
        return calls

    # --- hooks ------------------------------------------------------------------------------------

    def _before(self, model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if self.phase is None:
            return
        body = params.get("body") or b""
        service = model.service_model.service_name
        # DynamoDB and SQS speak JSON; other services' requests are only counted
        request = json.loads(body) if service in ("dynamodb", "sqs") and body else {}
        size = len(body) if isinstance(body, bytes | str) else 0  # an S3 upload's body is a stream
        state: dict[str, Any] = {"phase": self.phase, "request": request, "request_bytes": size}
        if service == "dynamodb" and model.name in _WRITES:
            state["old"] = self._images(model.name, request)
        context["bench"] = state

    def _after(self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any],
               **_: Any) -> None:
        state = context.get("bench")
        if state is None:
            return
        service, operation = model.service_model.service_name, model.name
        request = state["request"]
        # Only DynamoDB's and SQS's answers are read (reading another's, S3 GetObject's, would consume its stream)
        content = (getattr(http_response, "content", b"") or b"") if service in ("dynamodb", "sqs") else b""
        call = Call(phase=state["phase"], service=service, operation=operation, target=self._target(request),
                    kind="", status=int(getattr(http_response, "status_code", 0)))
        if service == "dynamodb":
            self._price_dynamodb(call, request, content, state.get("old"))
        elif service == "sqs":
            payload = state["request_bytes"] if operation.startswith("Send") else len(content)
            call.sqs_billed = sqs_billed_requests(payload if operation.startswith(("Send", "Receive")) else 0)
            call.kind = "message"
        with self._lock:
            self.calls.append(call)

    # --- DynamoDB ---------------------------------------------------------------------------------

    def _target(self, request: dict[str, Any]) -> str:
        name = request.get("TableName") or request.get("QueueUrl")
        if not name and request.get("RequestItems"):
            name = next(iter(request["RequestItems"]))
        name = str(name or "-")
        return self._names.get(name, name)

    def _table(self, name: str) -> _TableInfo:
        if name not in self._tables:
            table = self._probe.describe_table(TableName=name)["Table"]
            self._tables[name] = _TableInfo(keys=[k["AttributeName"] for k in table["KeySchema"]],
                                            indexes=table.get("GlobalSecondaryIndexes", []))
        return self._tables[name]

    def _keys_written(self, operation: str, request: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        if operation == "BatchWriteItem":
            found = []
            for table, writes in request["RequestItems"].items():
                for write in writes:
                    if "PutRequest" in write:
                        found.append((table, self._key_of(table, write["PutRequest"]["Item"])))
                    else:
                        found.append((table, write["DeleteRequest"]["Key"]))
            return found
        if operation == "TransactWriteItems":
            writes = [next(iter(item.values())) for item in request["TransactItems"]]
            return [(w["TableName"], w["Key"] if "Key" in w else self._key_of(w["TableName"], w["Item"]))
                    for w in writes]
        table = request["TableName"]
        key = request["Key"] if "Key" in request else self._key_of(table, request["Item"])
        return [(table, key)]

    def _key_of(self, table: str, item: dict[str, Any]) -> dict[str, Any]:
        return {k: item[k] for k in self._table(table).keys}

    def _images(self, operation: str, request: dict[str, Any]) -> list[tuple[str, dict[str, Any], Any]]:
        return [(table, key, self._probe.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item"))
                for table, key in self._keys_written(operation, request)]

    def _price_dynamodb(self, call: Call, request: dict[str, Any], content: bytes,
                        old: list[tuple[str, dict[str, Any], Any]] | None) -> None:
        operation = call.operation
        if operation in _UNPRICED_DATA:
            raise NotImplementedError(f"bench does not price DynamoDB {operation}; add its rule to bench.capacity")
        if old is not None:
            kinds = []
            for table, key, before in old:
                after = self._probe.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
                info = self._table(table)
                size = max(item_size(before), item_size(after))
                call.item_bytes = max(call.item_bytes, size)
                # a transaction's writes cost twice (capacity.CAPACITY_RULES)
                call.wru += write_units(size) * (2 if operation == "TransactWriteItems" else 1)
                call.gsi_wru += sum(index_write_units(before, after, index, info.keys) for index in info.indexes)
                kinds.append(_kind(table, key, self._names))
            call.kind = ",".join(sorted(set(kinds)))
        elif operation in _READS:
            answer = json.loads(content or b"{}")
            consistent = bool(request.get("ConsistentRead"))
            if operation == "GetItem":
                call.item_bytes = item_size(answer.get("Item"))
                call.rru = read_units(call.item_bytes, consistent=consistent)
                call.kind = _kind(request["TableName"], request["Key"], self._names)
            elif operation == "BatchGetItem":
                for table, keys in request["RequestItems"].items():
                    items = answer.get("Responses", {}).get(table, [])
                    call.rru += sum(read_units(item_size(item), consistent=consistent) for item in items)
                    call.rru += read_units(0, consistent=consistent) * max(0, len(keys["Keys"]) - len(items))
                call.kind = "JOB"
            else:
                total = sum(item_size(item) for item in answer.get("Items", []))
                call.rru = read_units(total, consistent=consistent and "IndexName" not in request)
                call.kind = "query"


def _kind(table: str, key: dict[str, Any], names: dict[str, str]) -> str:
    if names.get(table) == "IdempotencyTable":
        return "idempotency"
    pk = key.get("pk", next(iter(key.values()))).get("S", "")
    if pk.startswith("TENANT#") and "sk" in key:  # a tenant's items, by what they are: USAGE, LIMITS, WHSEC...
        return str(key["sk"].get("S", "").split("#", 1)[0])
    return str(pk.split("#", 1)[0]) if "#" in pk else "item"


def summarize(calls: list[Call], *, exclude_kinds: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Totals and a per-operation breakdown of some calls."""
    kept = [c for c in calls if c.kind not in exclude_kinds]
    by_label: dict[str, dict[str, Any]] = defaultdict(lambda: {"requests": 0, "wru": 0, "gsi_wru": 0, "rru": 0.0,
                                                               "sqs_billed": 0, "max_item_bytes": 0,
                                                               "phases": []})
    for call in kept:
        row = by_label[call.label]
        row["requests"] += 1
        row["wru"] += call.wru
        row["gsi_wru"] += call.gsi_wru
        row["rru"] += call.rru
        row["sqs_billed"] += call.sqs_billed
        row["max_item_bytes"] = max(row["max_item_bytes"], call.item_bytes)
        if call.phase not in row["phases"]:
            row["phases"].append(call.phase)
    return {
        "aws_requests": len(kept),
        "dynamodb_requests": sum(c.service == "dynamodb" for c in kept),
        "sqs_requests": sum(c.service == "sqs" for c in kept),
        "sqs_billed_requests": sum(c.sqs_billed for c in kept),
        "wru": sum(c.wru + c.gsi_wru for c in kept),
        "wru_base_table": sum(c.wru for c in kept),
        "wru_gsi": sum(c.gsi_wru for c in kept),
        "rru": sum(c.rru for c in kept),
        "by_operation": dict(by_label),  # in the order of first use
    }
