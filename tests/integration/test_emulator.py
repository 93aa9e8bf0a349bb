"""The emulator's DynamoDB applies each request atomically, as DynamoDB does: of racing conditional writes
to one item, exactly one succeeds (aijobs.local.emulator), in-process and in the local stack's moto server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from aijobs.local.emulator import start_moto_server
from aijobs.local.template import LocalResources

WRITERS = 8


@pytest.fixture
def slow_conditions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Widen moto's gap between reading an item and writing it, so that unserialized writes overlap every time."""
    from moto.dynamodb.models import table

    real = table.get_filter_expression

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.02)
        return real(*args, **kwargs)

    monkeypatch.setattr(table, "get_filter_expression", slow)


def _race(client: Any, table: str, key: dict[str, Any]) -> list[str]:
    """WRITERS threads put the same new item at once, each on condition that it does not exist yet."""
    start = threading.Barrier(WRITERS)

    def put(writer: int) -> str:
        start.wait(timeout=10)
        try:
            client.put_item(TableName=table, Item={**key, "writer": {"N": str(writer)}},
                            ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])
        return "written"

    with ThreadPoolExecutor(WRITERS) as pool:
        return sorted(pool.map(put, range(WRITERS), timeout=30))


EXACTLY_ONE = ["ConditionalCheckFailedException"] * (WRITERS - 1) + ["written"]


def test_racing_conditional_puts_of_one_item_let_exactly_one_win(
        aws: tuple[boto3.session.Session, LocalResources], slow_conditions: None) -> None:
    session, resources = aws
    client = session.client("dynamodb")

    outcomes = _race(client, resources.refs["JobsTable"], {"pk": {"S": "RACE#1"}, "sk": {"S": "RACE"}})

    assert outcomes == EXACTLY_ONE


@pytest.fixture
def moto_server_table() -> Iterator[tuple[Any, str]]:
    """A table in moto served over HTTP, as ``make run`` starts it (in another region than the moto world's)."""
    server = start_moto_server()
    host, port = server.get_host_and_port()
    client = boto3.client("dynamodb", endpoint_url=f"http://{host}:{port}", region_name="eu-west-1",
                          aws_access_key_id="local", aws_secret_access_key="local")
    name = "emulator-race"
    client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    try:
        yield client, name
    finally:
        client.delete_table(TableName=name)  # moto's data is process-wide: leave none behind
        server.stop()


def test_racing_conditional_puts_through_the_local_stacks_moto_server_let_exactly_one_win(
        moto_server_table: tuple[Any, str], slow_conditions: None) -> None:
    client, table = moto_server_table

    outcomes = _race(client, table, {"pk": {"S": "RACE#1"}})

    assert outcomes == EXACTLY_ONE


def test_the_local_stacks_moto_server_answers_query_vectors_from_the_templates_index(
        template: dict[str, Any]) -> None:
    from aijobs.local.template import function_environment, provision
    from aijobs.settings import Settings
    from aijobs.vectors import Chunk, VectorIndex

    server = start_moto_server()
    host, port = server.get_host_and_port()
    session = boto3.session.Session(region_name="eu-west-1", aws_access_key_id="local",
                                    aws_secret_access_key="local")
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
            # the vector bucket and index and a function told of them, in another region than the moto world's
            vectors_only = {"Parameters": template["Parameters"], "Resources": {
                name: r for name, r in template["Resources"].items()
                if r["Type"].startswith("AWS::S3Vectors::") or name == "ApiFunction"}}
            resources = provision(vectors_only, session=session, prefix="emulator")
            settings = Settings(**{name.removeprefix("AIJOBS_").lower(): value for name, value in
                                   function_environment(vectors_only, resources, "ApiFunction").items()
                                   if name.startswith("AIJOBS_VECTOR_")})
            index = VectorIndex(client=session.client("s3vectors"), index_arn=settings.vector_index_arn,
                                dimension=settings.vector_dimension)
            near, far = [1.0] * settings.vector_dimension, [1.0, -1.0] * (settings.vector_dimension // 2)
            index.put([Chunk("t1", "c1", "near", 0, near, "the near one"), Chunk("t1", "c1", "far", 0, far, "x")])

            matches = index.query(near, tenant="t1", collection_id="c1", top_k=2)
            session.client("s3vectors").delete_index(indexArn=settings.vector_index_arn)  # leave none behind
            session.client("s3vectors").delete_vector_bucket(
                vectorBucketName=resources.refs["VectorBucket"].rsplit("/", 1)[1])
    finally:
        server.stop()

    assert [(m.document_id, round(m.score, 6)) for m in matches] == [("near", 1.0), ("far", 0.0)]
    assert matches[0].text == "the near one"


# --- the per-test reset of the moto world (tests/integration/conftest.py) -----------------------------------------


def _world(session: boto3.session.Session, resources: LocalResources, template: dict[str, Any]) -> dict[str, Any]:
    """What a test can observe of the template's resources."""
    dynamodb, sqs, s3, scheduler = (session.client(name) for name in ("dynamodb", "sqs", "s3", "scheduler"))
    kinds = {logical_id: resource["Type"] for logical_id, resource in template["Resources"].items()}
    counts = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
              "ApproximateNumberOfMessagesDelayed"]
    return {
        "items": {r: dynamodb.scan(TableName=resources.refs[r], ConsistentRead=True)["Count"]
                  for r, kind in kinds.items() if kind == "AWS::DynamoDB::Table"},
        "messages": {r: sqs.get_queue_attributes(QueueUrl=resources.refs[r], AttributeNames=counts)["Attributes"]
                     for r, kind in kinds.items() if kind == "AWS::SQS::Queue"},
        "objects": {r: s3.list_objects_v2(Bucket=resources.refs[r])["KeyCount"]
                    for r, kind in kinds.items() if kind == "AWS::S3::Bucket"},
        "schedules": sorted((s["GroupName"], s["Name"]) for s in scheduler.list_schedules()["Schedules"]),
        "groups": sorted(g["Name"] for g in scheduler.list_schedule_groups()["ScheduleGroups"]),
    }


def test_the_reset_leaves_no_trace_of_what_a_test_did(aws: tuple[boto3.session.Session, LocalResources],
                                                     moto_world: Any, template: dict[str, Any]) -> None:
    session, resources = aws
    fresh = _world(session, resources, template)
    assert set(fresh["items"].values()) == {0} and set(fresh["objects"].values()) == {0}
    assert all(set(counts.values()) == {"0"} for counts in fresh["messages"].values())
    assert fresh["schedules"] == [] and resources.refs["ScheduleGroup"] in fresh["groups"]
    dynamodb, sqs, scheduler = session.client("dynamodb"), session.client("sqs"), session.client("scheduler")
    for logical_id in fresh["items"]:
        dynamodb.put_item(TableName=resources.refs[logical_id], Item={
            key["AttributeName"]: {"S": "x"} for key in template["Resources"][logical_id]["Properties"]["KeySchema"]})
    for logical_id in fresh["messages"]:
        url = resources.refs[logical_id]
        sqs.send_message(QueueUrl=url, MessageBody="visible")
        sqs.send_message(QueueUrl=url, MessageBody="delayed", DelaySeconds=900)
        sqs.send_message(QueueUrl=url, MessageBody="in flight")
        sqs.receive_message(QueueUrl=url, VisibilityTimeout=900)
    session.client("s3").put_object(Bucket=resources.refs["ResultsBucket"], Key="outputs/x/1", Body=b"x")
    target = {"Arn": resources.arns["SchedulerFunction"], "RoleArn": resources.arns["SchedulerInvokeRole"]}
    scheduler.create_schedule_group(Name="a-test-group")
    for group in (resources.refs["ScheduleGroup"], "a-test-group", "default"):
        scheduler.create_schedule(Name="s", GroupName=group, ScheduleExpression="rate(1 hour)",
                                  FlexibleTimeWindow={"Mode": "OFF"}, Target=target)
    assert _world(session, resources, template) != fresh

    moto_world.reset()

    assert _world(session, resources, template) == fresh


def _sets_sorted(value: Any) -> Any:
    """An item's JSON with its sets' members sorted: moto's projection takes them through a Python set."""
    if isinstance(value, dict):
        return {k: sorted(v) if k in ("SS", "NS", "BS") else _sets_sorted(v) for k, v in value.items()}
    return [_sets_sorted(v) for v in value] if isinstance(value, list) else value


def test_an_index_entry_projected_by_copy_is_the_one_moto_makes() -> None:
    """``project_directly`` (make run's emulator, the benches) copies an index's kept attributes instead of moto's
    JSON round trip of the whole item per attribute: the same entries, nested paths still moto's way."""
    from boto3.dynamodb.types import TypeSerializer
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    from aijobs.local.fast_moto import project_directly

    project_directly()
    attrs = {name: TypeSerializer().serialize(value) for name, value in {
        "pk": "JOB#1", "sk": "JOB", "gsi1pk": "TENANT#a", "gsi1sk": "job_1", "status": "completed", "n": 3,
        "request": {"kind": "text", "input": ["a", {"b": 1}]}, "tags": {"x", "y"}, "blob": b"\x00\x01"}.items()}
    item = Item(hash_key=DynamoType(attrs["pk"]), range_key=DynamoType(attrs["sk"]), attrs=attrs)
    for paths in ([["pk"], ["sk"], ["gsi1pk"], ["gsi1sk"], ["status"], ["model"], ["n"]],
                  [["request"], ["tags"], ["blob"]], [["request", "kind"], ["pk"]]):
        copied, moto = item.project(paths), Item.project.__wrapped__(item, paths)  # type: ignore[attr-defined]

        assert _sets_sorted(copied.to_json()) == _sets_sorted(moto.to_json()), paths  # (a set has no order)
    # the copy is a copy: changing the entry leaves the item as it was
    item.project([["request"]]).attrs["request"].value["kind"] = DynamoType({"S": "image"})
    assert item.attrs["request"].value["kind"] == DynamoType({"S": "text"})
