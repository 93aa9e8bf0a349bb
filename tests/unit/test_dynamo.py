"""The single table's shared helpers: update expressions, cursors, items."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import BaseModel

from aijobs.dynamo import decode_cursor, encode_cursor, to_attributes, update_request
from aijobs.errors import InvalidRequest
from aijobs.models.jobs import Usage


def test_update_request_aliases_every_name_so_reserved_words_need_no_care() -> None:
    request = update_request(set={"status": "queued", "error": Usage(input_tokens=1), "cost_usd": 0.5},
                             add={"attempt": 1}, remove=["lease_until"],
                             condition="#status = :running AND #token = :t", values={":running": "r", ":t": "x"})

    assert request["UpdateExpression"] == ("SET #status = :set_status, #error = :set_error, #cost_usd = :set_cost_usd "
                                           "ADD #attempt :add_attempt REMOVE #lease_until")
    assert request["ExpressionAttributeNames"] == {f"#{n}": n for n in ("status", "error", "cost_usd", "attempt",
                                                                         "lease_until", "token")}
    assert request["ExpressionAttributeValues"] == {
        ":set_status": "queued",
        ":set_error": {"input_tokens": 1, "output_tokens": 0, "total_tokens": 0, "estimated": False},
        ":set_cost_usd": Decimal("0.5"), ":add_attempt": 1, ":running": "r", ":t": "x"}
    assert request["ConditionExpression"] == "#status = :running AND #token = :t"


def test_attributes_hold_decimals_and_a_models_unset_fields_are_left_out() -> None:
    class Item(BaseModel):
        price: float
        note: str | None = None

    assert to_attributes({"a": 0.1, "c": [1.5]}) == {"a": Decimal("0.1"), "c": [Decimal("1.5")]}
    assert to_attributes(Item(price=0.25)) == {"price": Decimal("0.25")}


def test_a_cursor_reads_back_only_in_its_own_index_and_partition() -> None:
    key = {"pk": "JOB#1", "sk": "JOB", "gsi1pk": "TENANT#a", "gsi1sk": "job_1"}
    cursor = encode_cursor(key)

    assert decode_cursor(cursor, index="gsi1", partition="TENANT#a") == key
    for index, partition in (("gsi1", "TENANT#b"), ("gsi2", "TENANT#a")):
        with pytest.raises(InvalidRequest):
            decode_cursor(cursor, index=index, partition=partition)
    with pytest.raises(InvalidRequest):
        decode_cursor("not base64 json", index="gsi1", partition="TENANT#a")


def test_a_table_cursor_reads_back_only_in_its_own_partition_and_sort_key_prefix() -> None:
    key = {"pk": "JOB#job_1", "sk": "DELIVERY#msg_1#0001"}
    cursor = encode_cursor(key)

    assert decode_cursor(cursor, index=None, partition="JOB#job_1", sort_prefix="DELIVERY#") == key
    for partition, prefix in (("JOB#job_2", "DELIVERY#"), ("JOB#job_1", "DELTA#")):
        with pytest.raises(InvalidRequest):
            decode_cursor(cursor, index=None, partition=partition, sort_prefix=prefix)
    with pytest.raises(InvalidRequest):  # an index's cursor is not the table's
        decode_cursor(encode_cursor({**key, "gsi1pk": "JOB#job_1", "gsi1sk": "x"}), index=None, partition="JOB#job_1")
