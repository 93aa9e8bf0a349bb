"""The local stack's moto shortcuts (aijobs.local.fast_moto) answer exactly what moto itself answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from aijobs.local.fast_moto import make_moto_faster

EVERY_TYPE: dict[str, Any] = {"pk": {"S": "JOB#1"}, "sk": {"S": "A"}, "n": {"N": "2E-8"}, "i": {"N": "42"},
              "b": {"B": b"\x00\xffbytes"}, "yes": {"BOOL": True}, "no": {"BOOL": False}, "none": {"NULL": True},
              "m": {"M": {"inner": {"S": "x"}, "deep": {"M": {"l": {"L": [{"N": "1"}, {"S": "two"}]}}}}},
              "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2.5"]}, "bs": {"BS": [b"one", b"two"]},
              "empty": {"L": []}}


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, list[str]]]:
    """A moto DynamoDB client whose every answer is made both ways; the actions whose answers differed."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    from moto.dynamodb.responses import DynamoHandler

    make_moto_faster()
    fast = DynamoHandler.serialized
    original = fast.__wrapped__  # type: ignore[attr-defined]  # moto's own, even when an earlier test made moto faster already
    differed: list[str] = []

    def both(self: DynamoHandler, action_result: Any) -> Any:
        mine, theirs = fast(self, action_result), original(self, action_result)
        if (mine[0], mine[1], json.loads(mine[2] or "{}")) != (theirs[0], theirs[1], json.loads(theirs[2] or "{}")):
            differed.append(self._get_action())
        return mine

    monkeypatch.setattr(DynamoHandler, "serialized", both)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                  {"AttributeName": "sk", "AttributeType": "S"}],
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                       {"AttributeName": "sk", "KeyType": "RANGE"}])
        try:
            yield client, differed
        finally:  # another module's mock may hold moto's state meanwhile (xdist runs modules side by side)
            client.delete_table(TableName="t")


def test_item_answers_are_moto_s_own_for_every_attribute_type(compared: tuple[Any, list[str]]) -> None:
    # Given an item with every kind of attribute value
    client, differed = compared
    key = {"pk": EVERY_TYPE["pk"], "sk": EVERY_TYPE["sk"]}
    client.put_item(TableName="t", Item=EVERY_TYPE)
    # When it is read, updated, queried, scanned, batch-read, transacted and deleted
    got = client.get_item(TableName="t", Key=key)["Item"]
    updated = client.update_item(TableName="t", Key=key, UpdateExpression="SET #m.#inner = :v ADD #i :one",
                                 ExpressionAttributeNames={"#m": "m", "#inner": "inner", "#i": "i"},
                                 ExpressionAttributeValues={":v": {"S": "y"}, ":one": {"N": "1"}},
                                 ReturnValues="ALL_NEW")["Attributes"]
    client.update_item(TableName="t", Key=key, UpdateExpression="SET #m.#inner = :v ADD #i :one",
                       ExpressionAttributeNames={"#m": "m", "#inner": "inner", "#i": "i"},
                       ExpressionAttributeValues={":v": {"S": "z"}, ":one": {"N": "1"}}, ReturnValues="UPDATED_OLD")
    client.query(TableName="t", KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": key["pk"]},
                 ReturnConsumedCapacity="TOTAL")
    client.query(TableName="t", KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": key["pk"]},
                 ProjectionExpression="b, ss", Limit=1)
    client.scan(TableName="t", Select="COUNT")
    client.batch_get_item(RequestItems={"t": {"Keys": [key, {"pk": {"S": "missing"}, "sk": {"S": "A"}}]}})
    client.transact_get_items(TransactItems=[{"Get": {"TableName": "t", "Key": key}}])
    client.batch_write_item(RequestItems={"t": [{"PutRequest": {"Item": {**key, "sk": {"S": "B"}}}}]})
    with pytest.raises(ClientError):  # an error: moto's own way, untouched
        client.update_item(TableName="t", Key=key, UpdateExpression="SET #s = :s", ConditionExpression="#s = :s",
                           ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": "x"}})
    old = client.delete_item(TableName="t", Key=key, ReturnValues="ALL_OLD")["Attributes"]
    # Then every answer is the one moto itself would have made, and the SDK reads the values back
    assert differed == []
    assert got["b"] == {"B": b"\x00\xffbytes"} and got["bs"] == {"BS": [b"one", b"two"]}
    assert updated["m"]["M"]["inner"] == {"S": "y"} and updated["i"] == {"N": "43"}
    assert old["none"] == {"NULL": True} and old["no"] == {"BOOL": False}


@pytest.mark.parametrize("paths", [
    [["pk"], ["n"], ["missing"]],
    [["m", "inner"], ["m", "deep", "l"], ["i"]],
    [["m", "deep"], ["m"], ["m", "inner"]],  # the whole map wins over its members
    [["m", "missing"], ["i"]],  # nothing kept of the map
    [["m", "deep", "l"], ["b"], ["bs"], ["ss"], ["ns"], ["none"], ["yes"]],
])
def test_a_projection_keeps_what_moto_s_own_keeps(paths: list[list[str]]) -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    from aijobs.local.fast_moto import project_directly

    project_directly()
    item = Item(hash_key=DynamoType(EVERY_TYPE["pk"]), range_key=DynamoType(EVERY_TYPE["sk"]), attrs=EVERY_TYPE)

    mine, moto_s = Item.project(item, paths), Item.project.__wrapped__(item, paths)  # type: ignore[attr-defined]

    assert _unordered_sets(mine.to_json()) == _unordered_sets(moto_s.to_json())
    assert Item.project(item, [["n", "not_a_map"]]).attrs == {}  # (moto's own fails on it; DynamoDB keeps nothing)


def _unordered_sets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: sorted(v) if k in ("SS", "NS", "BS") else _unordered_sets(v) for k, v in value.items()}
    return [_unordered_sets(v) for v in value] if isinstance(value, list) else value


def test_a_message_is_received_within_its_queue_s_retention_and_not_after(
        sqs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import moto.sqs.models

    url = sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="fresh")
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]] == ["fresh"]
    real = moto.sqs.models.unix_time  # type: ignore[attr-defined]
    monkeypatch.setattr(moto.sqs.models, "unix_time", lambda *a: real(*a) + 61)  # its 60 s have gone by

    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []


def test_moto_keeps_no_copy_of_the_items_and_messages_it_handed_out(compared: tuple[Any, list[str]]) -> None:
    from moto.dynamodb.models.dynamo_type import Item

    client, _ = compared
    key = {"pk": EVERY_TYPE["pk"], "sk": EVERY_TYPE["sk"]}
    client.put_item(TableName="t", Item=EVERY_TYPE)

    for n in range(20):
        client.update_item(TableName="t", Key=key, UpdateExpression="SET #n = :n",
                           ExpressionAttributeNames={"#n": "i"}, ExpressionAttributeValues={":n": {"N": str(n)}})

    assert len(Item.instances_tracked) == 0  # type: ignore[attr-defined]
    assert client.get_item(TableName="t", Key=key)["Item"]["i"] == {"N": "19"}


@pytest.mark.parametrize("expression", [
    "SET #a = :v, #a = :w",  # two actions on one path
    "SET #a = :v REMOVE #a",
    "SET #a.#b = :v REMOVE #a",  # a path and its parent
    "SET #a = :v SET #b = :w",  # a clause twice
])
def test_a_bad_update_expression_fails_with_moto_s_own_error(compared: tuple[Any, list[str]], expression: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb.parsing import validators

    client, _ = compared
    key = {"pk": EVERY_TYPE["pk"], "sk": EVERY_TYPE["sk"]}
    client.put_item(TableName="t", Item=EVERY_TYPE)

    def error() -> dict[str, Any]:
        with pytest.raises(ClientError) as failed:
            client.update_item(TableName="t", Key=key, UpdateExpression=expression,
                               ExpressionAttributeNames={"#a": "a", "#b": "b"},
                               ExpressionAttributeValues={":v": {"S": "v"}, ":w": {"S": "w"}})
        return dict(failed.value.response["Error"])

    mine = error()
    for checker in (validators.ActionCountValidator, validators.OverlappingPathsValidator):
        monkeypatch.setattr(checker, "traverse", checker.traverse.__defaults__[0])  # moto's own walk
    monkeypatch.setattr(validators, "deepcopy", __import__("copy").deepcopy)
    assert mine == error() and mine["Code"] == "ValidationException"
    assert client.get_item(TableName="t", Key=key)["Item"] == EVERY_TYPE  # nothing written


def test_an_item_over_the_size_limit_is_still_refused_and_one_under_it_written(
        compared: tuple[Any, list[str]]) -> None:
    client, _ = compared
    key = {"pk": {"S": "big"}, "sk": {"S": "A"}}
    euros = "\u20ac" * 100_000  # 100,000 characters, 300,000 bytes: its repr's bound (4 bytes each) is over the limit
    client.put_item(TableName="t", Item={**key, "text": {"S": euros}})

    def add(value: str) -> None:
        client.update_item(TableName="t", Key=key, UpdateExpression="SET #more = :v",
                           ExpressionAttributeNames={"#more": "more"}, ExpressionAttributeValues={":v": {"S": value}})

    add("x" * 90_000)  # 390 KB in all: written
    with pytest.raises(ClientError) as refused:
        add("\u20ac" * 10_000)  # 420 KB
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "size" in refused.value.response["Error"]["Message"]
    assert client.get_item(TableName="t", Key=key)["Item"]["more"] == {"S": "x" * 90_000}


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    make_moto_faster()
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def test_a_fifo_queue_still_drops_a_duplicate_by_its_content(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="q.fifo", Attributes={"FifoQueue": "true",
                                                           "ContentBasedDeduplication": "true"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g")
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "same", "MessageGroupId": "g"},
                                                  {"Id": "2", "MessageBody": "other", "MessageGroupId": "g"}])

    bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]

    assert bodies == ["same", "other"]
    with pytest.raises(ClientError, match="MessageDeduplicationId"):  # and without it, one is still asked for
        sqs.send_message(QueueUrl=sqs.create_queue(QueueName="r.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"],
                         MessageBody="x", MessageGroupId="g")


def test_a_standard_queue_s_attributes_count_what_was_sent(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="one")
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": "same"} for n in range(3)])

    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]

    assert attributes["ApproximateNumberOfMessages"] == "4" and "ContentBasedDeduplication" not in attributes
    assert len(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]) == 4
