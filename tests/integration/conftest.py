"""Integration: handlers and services in-process against moto, with the resources of template.yaml.

moto is started and the template provisioned once for the package (``moto_world``); each test's ``aws`` puts
that world back as it was just after provisioning (``reset``: empty tables, queues, bucket, no schedules but
the template's) and hands the test a boto3 session of its own, so hooks a test registers cannot outlive it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.session
import pytest
from moto import mock_aws

from aijobs.local.emulator import emulate_vector_queries, make_dynamodb_atomic
from aijobs.local.server_process import UvicornThread
from aijobs.local.template import LocalResources, provision, reset
from aijobs.services import Services, set_services
from aijobs.settings import Settings
from tests.helpers import MovableClock

TENANT_A, KEY_A = "tenant-a", "aj_test_key_a"
TENANT_B, KEY_B = "tenant-b", "aj_test_key_b"
PREFIX = "test"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           # moto, like SQS, refuses to purge a queue twice within 60 s; the per-test reset purges every test
           "MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR": "false"}


def _aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)


def _session(loader: Any) -> boto3.session.Session:
    core = botocore.session.get_session()
    core.register_component("data_loader", loader)  # shared: parsing the models again costs ~0.2 s a session
    session = boto3.session.Session(botocore_session=core, region_name="us-east-1")
    paths = core.get_component("data_loader").search_paths  # boto3 adds its data path once a session: keep one
    paths[:] = list(dict.fromkeys(paths))
    return session


@dataclass
class MotoWorld:
    """moto with the template's resources, for the whole package. Its own session is never handed to a test."""

    template: dict[str, Any]
    resources: LocalResources
    loader: Any  # botocore's data loader, shared by every session made here
    clients: dict[str, Any] = field(default_factory=dict)

    def new_session(self) -> boto3.session.Session:
        return _session(self.loader)

    def client(self, service_name: str) -> Any:
        if service_name not in self.clients:
            self.clients[service_name] = self.new_session().client(service_name)  # type: ignore[call-overload]
        return self.clients[service_name]

    def reset(self) -> None:
        """Back to just provisioned (see ``aijobs.local.template.reset``), with the clients kept here."""
        reset(self.template, self.resources, session=self, prefix=PREFIX)


@pytest.fixture(scope="package")
def moto_world(template: dict[str, Any]) -> Iterator[MotoWorld]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        _aws_environment(monkeypatch)
        make_dynamodb_atomic()  # conditional writes atomic, as in DynamoDB (the webhook ledger relies on it)
        emulate_vector_queries()  # moto has no QueryVectors
        with mock_aws():
            loader = botocore.session.get_session().get_component("data_loader")
            resources = provision(template, session=_session(loader), prefix=PREFIX)
            yield MotoWorld(template=template, resources=resources, loader=loader)


@pytest.fixture
def aws(moto_world: MotoWorld, monkeypatch: pytest.MonkeyPatch) -> tuple[boto3.session.Session, LocalResources]:
    """A fresh world: the template's resources, empty, and a boto3 session of this test's own."""
    _aws_environment(monkeypatch)
    moto_world.reset()
    return moto_world.new_session(), moto_world.resources


def make_settings(resources: LocalResources, model_url: str, **overrides: Any) -> Settings:
    return Settings(
        jobs_table=resources.refs["JobsTable"], idempotency_table=resources.refs["IdempotencyTable"],
        jobs_queue_url=resources.refs["JobsQueue"], deliveries_queue_url=resources.refs["DeliveriesQueue"],
        jobs_dead_letter_queue_url=resources.refs["JobsDeadLetterQueue"],
        jobs_high_queue_url=resources.refs["JobsHighQueue"], jobs_low_queue_url=resources.refs["JobsLowQueue"],
        jobs_high_dead_letter_queue_url=resources.refs["JobsHighDeadLetterQueue"],
        jobs_low_dead_letter_queue_url=resources.refs["JobsLowDeadLetterQueue"],
        results_bucket=resources.refs["ResultsBucket"], vector_index_arn=resources.arns["VectorIndex"],
        schedule_group=resources.refs["ScheduleGroup"], scheduler_function_arn=resources.arns["SchedulerFunction"],
        scheduler_role_arn=resources.arns["SchedulerInvokeRole"],
        model_base_url=f"{model_url}/v1", model_api_key="fake",
        default_model="fake-model", retry_base_delay_s=0, **overrides)


@contextmanager
def installed_services(aws: tuple[boto3.session.Session, LocalResources], fake_model: UvicornThread,
                       **overrides: Any) -> Iterator[Services]:
    """Services on moto with tenants A and B, installed as the process's services while the test runs.

    Their clock is a ``MovableClock``: ``svc.clock.advance(s)`` moves the time every store and service reads.
    """
    session, resources = aws
    svc = Services(settings=make_settings(resources, fake_model.url, **overrides), session=session,
                   clock=MovableClock())
    svc.tenants.add_api_key(TENANT_A, KEY_A)
    svc.tenants.add_api_key(TENANT_B, KEY_B)
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


# Services as the local stack runs them: receivers on 127.0.0.1 over http, retries without waiting (webhook tests).
DEV_SETTINGS = {"allow_private_callbacks": True, "allow_http_callbacks": True, "webhook_retry_schedule": "0,0,0,0"}


@pytest.fixture
def dev(aws: tuple[boto3.session.Session, LocalResources], fake_model: UvicornThread) -> Iterator[Services]:
    """Services as the local stack runs them: receivers on 127.0.0.1 over http, retries without waiting."""
    with installed_services(aws, fake_model, **DEV_SETTINGS) as svc:
        yield svc


@pytest.fixture
def dev_api(dev: Services) -> Iterator[Any]:
    with api_client() as client:
        yield client


@pytest.fixture
def handlers(dev: Services) -> tuple[Any, Any]:
    """The worker's and the webhook sender's Lambda handlers."""
    from aijobs.local.stack import load_handler

    return load_handler("worker", "lambda_handler"), load_handler("webhook", "lambda_handler")


@pytest.fixture
def server(services: Services) -> Iterator[UvicornThread]:
    """The API on uvicorn on 127.0.0.1 (for streams and real HTTP clients such as the openai SDK)."""
    from aijobs.api import create_app
    from aijobs.local.stack import free_port

    live = UvicornThread(create_app(), free_port())
    live.start()
    yield live
    live.stop()
