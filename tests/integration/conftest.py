"""Integration: handlers and services in-process against moto, with the resources of template.yaml."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from moto import mock_aws

from aijobs.local.emulator import make_dynamodb_atomic
from aijobs.local.stack import UvicornThread
from aijobs.local.template import LocalResources, load_template, provision
from aijobs.services import Services, set_services
from aijobs.settings import Settings

TENANT_A, KEY_A = "tenant-a", "aj_test_key_a"
TENANT_B, KEY_B = "tenant-b", "aj_test_key_b"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[boto3.session.Session, LocalResources]]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    make_dynamodb_atomic()  # conditional writes atomic, as in DynamoDB (the webhook ledger relies on it)
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        yield session, provision(load_template(), session=session, prefix="test")


def make_settings(resources: LocalResources, model_url: str, **overrides: Any) -> Settings:
    return Settings(
        jobs_table=resources.refs["JobsTable"], idempotency_table=resources.refs["IdempotencyTable"],
        jobs_queue_url=resources.refs["JobsQueue"], deliveries_queue_url=resources.refs["DeliveriesQueue"],
        results_bucket=resources.refs["ResultsBucket"],
        schedule_group=resources.refs["ScheduleGroup"], scheduler_function_arn=resources.arns["SchedulerFunction"],
        scheduler_role_arn=resources.arns["SchedulerInvokeRole"],
        model_base_url=f"{model_url}/v1", model_api_key="fake",
        default_model="fake-model", retry_base_delay_s=0, **overrides)


@contextmanager
def installed_services(aws: tuple[boto3.session.Session, LocalResources], fake_model: UvicornThread,
                       **overrides: Any) -> Iterator[Services]:
    """Services on moto with tenants A and B, installed as the process's services while the test runs."""
    session, resources = aws
    svc = Services(settings=make_settings(resources, fake_model.url, **overrides), session=session)
    svc.store.put_api_key(key=KEY_A, tenant=TENANT_A)
    svc.store.put_api_key(key=KEY_B, tenant=TENANT_B)
    set_services(svc)
    try:
        yield svc
    finally:
        set_services(None)


@pytest.fixture
def services(aws: tuple[boto3.session.Session, LocalResources], fake_model: UvicornThread) -> Iterator[Services]:
    with installed_services(aws, fake_model) as svc:
        yield svc


@contextmanager
def api_client(key: str = KEY_A) -> Iterator[Any]:
    """The FastAPI app in-process (the same app Mangum serves), on the installed services, as ``key``."""
    from fastapi.testclient import TestClient

    from aijobs.api import create_app

    with TestClient(create_app(), headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


@pytest.fixture
def api(services: Services) -> Iterator[Any]:
    with api_client() as client:
        yield client


@pytest.fixture
def worker_handler(services: Services) -> Any:
    """functions/worker/app.py's handler, imported as Lambda would."""
    from aijobs.local.stack import load_handler

    return load_handler("worker", "lambda_handler")


def run_worker(services: Services, handler: Any) -> dict[str, Any]:
    """Receive what is visible on the jobs queue and hand it to the worker as one SQS event; delete successes."""
    from aijobs.local.pollers import FakeLambdaContext, sqs_event

    sqs, url = services.sqs, services.settings.jobs_queue_url
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", [])
    if not messages:
        return {"batchItemFailures": [], "received": 0}
    result = handler(sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:test-JobsQueue"),
                     FakeLambdaContext("WorkerFunction"))
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    for m in messages:
        if m["MessageId"] not in failed:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return {**result, "received": len(messages)}
