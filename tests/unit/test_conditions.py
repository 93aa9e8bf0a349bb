"""Key and Attr conditions built by many threads on one DynamoDB resource (aijobs/conditions.py)."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace
from typing import Any

import boto3
from boto3.dynamodb.conditions import BeginsWith, Key

from aijobs.conditions import thread_safe


class _Paused(BeginsWith):
    """``begins_with``, whose build waits (once) until ``resume`` is set: another thread's request comes in between.
    (The events are the class's: boto3 copies the request's parameters, conditions included.)"""

    paused = resume = threading.Event()

    def get_expression(self) -> dict[str, Any]:
        if not _Paused.paused.is_set():
            _Paused.paused.set()
            assert _Paused.resume.wait(10)
        return super().get_expression()


def _sent(resource: Any) -> list[dict[str, Any]]:
    """What the resource's client sends, answered here (nothing leaves the process)."""
    sent: list[dict[str, Any]] = []

    def answer(params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        sent.append(json.loads(params["body"]))
        return SimpleNamespace(status_code=200, headers={}), {"Items": [], "Count": 0}

    resource.meta.client.meta.events.register("before-call.dynamodb", answer)
    return sent


def _query_while_another_thread_reads(resource: Any) -> dict[str, Any]:
    table = resource.Table("jobs")
    sent = _sent(resource)
    _Paused.paused, _Paused.resume = threading.Event(), threading.Event()
    condition = Key("pk").eq("TENANT#a") & _Paused(Key("sk"), "SLOT#")
    query = threading.Thread(target=lambda: table.query(KeyConditionExpression=condition))
    query.start()
    assert _Paused.paused.wait(10)  # the query has its pk placeholder, and waits to make its sk's
    table.get_item(Key={"pk": "x", "sk": "y"})  # a request of another thread: it resets the builder
    _Paused.resume.set()
    query.join(10)
    return next(params for params in sent if "KeyConditionExpression" in params)


def _session() -> Any:
    return boto3.session.Session(region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")


def test_a_condition_built_while_another_thread_makes_a_request_keeps_its_names_apart() -> None:
    query = _query_while_another_thread_reads(thread_safe(_session().resource("dynamodb")))
    assert sorted(query["ExpressionAttributeNames"].values()) == ["pk", "sk"]
    assert query["KeyConditionExpression"] == "(#n0 = :v0 AND begins_with(#n1, :v1))"


def test_boto3s_own_builder_mixes_them_up() -> None:
    # What thread_safe mends: with boto3's builder, the same query names sk for both placeholders. If boto3 mends
    # it, this test fails, and aijobs/conditions.py can go.
    query = _query_while_another_thread_reads(_session().resource("dynamodb"))
    assert sorted(query["ExpressionAttributeNames"].values()) == ["sk"]


def test_the_services_resource_is_the_thread_safe_one() -> None:
    from aijobs.services import Services
    from aijobs.settings import Settings

    settings = Settings(jobs_table="jobs", idempotency_table="idempotency", jobs_queue_url="https://sqs.invalid/1/q",
                        model_base_url="http://127.0.0.1:9/v1")
    query = _query_while_another_thread_reads(Services(settings=settings, session=_session()).dynamodb)
    assert sorted(query["ExpressionAttributeNames"].values()) == ["pk", "sk"]
