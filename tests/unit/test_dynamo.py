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


def test_a_keys_only_page_filters_its_items_as_dynamodb_would() -> None:
    """gsi1lite does not hold ``request``: a list's filter on a job's kind is evaluated on the items read from the
    table (``matches``). Every filter the lists make, and a few more, against DynamoDB's (moto's) own evaluation of
    the same expression."""
    import boto3
    from boto3.dynamodb.conditions import Attr
    from moto import mock_aws

    from aijobs.dynamo import matches

    items = [{"pk": f"JOB#{n}", "sk": "JOB", "status": status, "model": model, "created_at": n, **extra}
             for n, (status, model, extra) in enumerate([
                 ("queued", "m1", {}), ("completed", "m2", {"request": {"kind": "text"}}),
                 ("failed", "m1", {"request": {"kind": "image"}}), ("in_progress", "m2", {"request": {}}),
                 ("completed", "m1", {"request": {"kind": "embedding"}, "note": 3})])]
    conditions = [
        Attr("status").eq("completed"), Attr("status").ne("completed"), Attr("status").is_in(["queued", "failed"]),
        Attr("status").eq("completed") & Attr("model").eq("m1"), Attr("model").eq("m2") | Attr("created_at").gte(4),
        Attr("request.kind").not_exists() | Attr("request.kind").eq("text"), Attr("request.kind").eq("image"),
        ~Attr("request").exists(), Attr("created_at").lt(2), Attr("created_at").between(1, 3),
        Attr("model").begins_with("m"), Attr("note").gt(2), Attr("note").lte(2),
    ]
    with mock_aws():
        table = boto3.resource("dynamodb", region_name="us-east-1").create_table(
            TableName="test-dynamo-matches", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}])
        for item in items:
            table.put_item(Item=item)
        for condition in conditions:
            expected = {item["pk"] for item in table.scan(FilterExpression=condition)["Items"]}

            assert {item["pk"] for item in items if matches(condition, item)} == expected, condition
        table.delete()  # another module's mock may hold moto's state meanwhile (xdist runs modules side by side)
