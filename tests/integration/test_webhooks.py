"""Webhooks against moto, the fake model and a real receiver on 127.0.0.1: submit-time guard, signed deliveries,
retries, the ledger, duplicates, lost enqueues, dying senders, send-time guard, secrets and redelivery."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from decimal import Decimal
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

from aijobs.dynamo import SECRET_PREFIX, tenant_partition
from aijobs.local.pollers import FakeLambdaContext, QueuePoller, sqs_event
from aijobs.local.server_process import UvicornThread
from aijobs.local.stack import load_handler
from aijobs.local.template import LocalResources
from aijobs.models.jobs import Job, JobRequest, Usage
from aijobs.models.messages import DeliveryMessage
from aijobs.pricing import Price
from aijobs.services import Services
from aijobs.webhooks.guard import CallbackGuard
from aijobs.webhooks.sender import WebhookSender
from tests.faults import sqs_down
from tests.helpers import eventually, load_event
from tests.integration.conftest import (
    DEV_SETTINGS,
    KEY_B,
    TENANT_A,
    TENANT_B,
    installed_services,
    run_worker,
)
from tests.receiver import Answer, Receiver, Tarpit


def _deliveries_poller(svc: Services, handler: Any) -> QueuePoller:
    return QueuePoller(name="WebhookFunction", sqs=svc.sqs, queue_url=svc.settings.deliveries_queue_url,
                       queue_arn="arn:aws:sqs:us-east-1:123456789012:test-DeliveriesQueue", handler=handler)


def _run_all(svc: Services, handlers: tuple[Any, Any], rounds: int = 10) -> None:
    """Feed the worker and the webhook function what is visible until both queues are quiet (bounded)."""
    worker, webhook = handlers
    poller = _deliveries_poller(svc, webhook)
    for _ in range(rounds):
        if not run_worker(svc, worker)["received"] + poller.poll_once():
            return


def _queue_counts(svc: Services) -> dict[str, int]:
    attributes = svc.sqs.get_queue_attributes(QueueUrl=svc.settings.deliveries_queue_url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"])
    return {k.removeprefix("ApproximateNumberOfMessages") or "Visible": int(v)
            for k, v in attributes["Attributes"].items()}


def _secrets(svc: Services, tenant: str = TENANT_A) -> list[str]:
    return [s.secret for s in svc.webhook_store.active_secrets(tenant)]


def _submit(svc: Services, url: str, prompt: str = "hello webhook") -> str:
    return svc.jobs.submit_job(tenant=TENANT_A, request=JobRequest(input=prompt, callback_url=url)).id


def _ledger(svc: Services, job_id: str) -> list[dict[str, Any]]:
    page = svc.outbox.list_deliveries(tenant=TENANT_A, job_id=job_id, limit=100, cursor=None)
    assert page.next_cursor is None  # every ledger here fits one page
    return [a.model_dump() for a in page.items]


# --- the submit-time guard (the deployed stack's settings) ------------------------------------------------------


@pytest.mark.parametrize("url", ["https://169.254.169.254/latest/meta-data/", "https://2130706433/",
                                 "https://[::ffff:10.0.0.1]/", "http://example.com/hook",
                                 "https://user:pw@example.com/", "https://localhost/"])
def test_forbidden_callback_url_is_422_and_writes_nothing(api: Any, services: Services, url: str) -> None:
    response = api.post("/v1/jobs", json={"input": "hi", "callback_url": url})
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["type"], error["code"], error["retryable"]) == ("invalid_request", "callback_url_forbidden", False)
    assert api.get("/v1/jobs").json()["data"] == []
    attributes = services.sqs.get_queue_attributes(QueueUrl=services.settings.jobs_queue_url,
                                                   AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_batch_item_with_forbidden_callback_fails_alone(api: Any) -> None:
    response = api.post("/v1/jobs/batch", json={"jobs": [
        {"input": "fine", "callback_url": "https://hooks.example.com/aijobs"},
        {"input": "ssrf", "callback_url": "https://0xA9FEA9FE/"}]})
    first, second = response.json()["data"]
    assert first["status"] == "queued"
    assert second["error"]["code"] == "callback_url_forbidden"
    assert [j["id"] for j in api.get("/v1/jobs").json()["data"]] == [first["id"]]


# IPv4 loopback and metadata inside IPv6: mapped, translated, compatible, NAT64, 6to4, Teredo.
EMBEDDED_LOOPBACK = ["::ffff:127.0.0.1", "::ffff:0:127.0.0.1", "::ffff:0:169.254.169.254", "::127.0.0.1",
                     "64:ff9b::7f00:1", "64:ff9b:1::7f00:1", "2002:7f00:1::1", "2001:0:4136:e378:8000:63bf:80ff:fffe"]


@pytest.mark.parametrize("address", EMBEDDED_LOOPBACK)
def test_an_ipv4_address_inside_ipv6_is_422_at_submit_even_with_private_receivers_allowed(
        dev_api: TestClient, address: str) -> None:
    for url in (f"https://[{address}]/hook", f"http://[{address}]:8080/latest/meta-data/"):
        response = dev_api.post("/v1/jobs", json={"input": "hi", "callback_url": url})

        assert response.status_code == 422 and response.json()["error"]["code"] == "callback_url_forbidden"
    assert dev_api.get("/v1/jobs").json()["data"] == []


@pytest.mark.parametrize("url", ["https://\uff11\uff12\uff17\u3002\uff10\u3002\uff10\u3002\uff11/", "https://0x7f.1/",
                                 "https://2130706433/", "https://127.1/", "https://127.0.0.1./"])
def test_loopback_in_any_notation_is_422_at_submit(api: Any, url: str) -> None:
    response = api.post("/v1/jobs", json={"input": "hi", "callback_url": url})

    assert response.status_code == 422
    assert response.json()["error"]["message"] == "callback_url is not allowed: it points at a loopback address"


# --- deliveries ---------------------------------------------------------------------------------------------------


def test_completed_job_sends_one_signed_webhook_whose_data_is_the_job_as_get_answers(
        dev: Services, dev_api: TestClient, handlers: tuple[Any, Any], receiver: Receiver) -> None:
    submitted = dev_api.post("/v1/jobs", json={"input": "hello webhook", "callback_url": f"{receiver.url}/hook"})
    job_id = submitted.json()["id"]
    _run_all(dev, handlers)
    (request,) = receiver.received
    secret = dev_api.get("/v1/webhook-secrets").json()["data"][0]["secret"]
    payload = Webhook(secret).verify(request.body, request.headers)
    assert request.path == "/hook" and request.headers["content-type"] == "application/json"
    assert payload["type"] == "job.completed"
    # the job as GET answers it, but for the URL of its stream: a webhook is sent for a job that has ended
    assert payload["data"] == {**dev_api.get(f"/v1/jobs/{job_id}").json(), "stream_url": None}
    assert payload["data"]["output"]["text"] == "Echo: hello webhook"
    (attempt,) = dev_api.get(f"/v1/jobs/{job_id}/deliveries").json()["data"]
    assert attempt["webhook_id"] == request.headers["webhook-id"]
    assert (attempt["attempt"], attempt["outcome"], attempt["status_code"], attempt["error"]) == (1, "delivered", 200,
                                                                                                   None)
    assert attempt["duration_ms"] >= 0 and attempt["next_attempt_at"] is None


def test_failed_job_sends_job_failed_with_its_error(dev: Services, handlers: tuple[Any, Any],
                                                    receiver: Receiver) -> None:
    _submit(dev, receiver.url, prompt="bad request [[fail=400]]")
    _run_all(dev, handlers)
    (request,) = receiver.received
    payload = Webhook(_secrets(dev)[0]).verify(request.body, request.headers)
    assert payload["type"] == "job.failed" and payload["data"]["error"]["type"] == "provider_error"


def test_job_without_callback_url_sends_nothing(dev: Services, handlers: tuple[Any, Any], receiver: Receiver) -> None:
    dev.jobs.submit_job(tenant=TENANT_A, request=JobRequest(input="no hook"))
    _run_all(dev, handlers)
    assert receiver.received == [] and _queue_counts(dev) == {"Visible": 0, "NotVisible": 0, "Delayed": 0}


def test_receiver_down_then_up_gets_the_event_with_one_id_and_the_ledger_shows_every_attempt(
        dev: Services, handlers: tuple[Any, Any], receiver: Receiver) -> None:
    receiver.answer(Answer(500), Answer(503))
    job_id = _submit(dev, receiver.url)
    _run_all(dev, handlers)
    assert len(receiver.received) == 3
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    assert len({r.body for r in receiver.received}) == 1
    for request in receiver.received:
        Webhook(_secrets(dev)[0]).verify(request.body, request.headers)
    ledger = _ledger(dev, job_id)
    assert [(a["attempt"], a["outcome"], a["status_code"], a["error"]) for a in ledger] == [
        (1, "retrying", 500, "http_500"), (2, "retrying", 503, "http_503"), (3, "delivered", 200, None)]
    assert all(a["next_attempt_at"] is not None for a in ledger[:2])


def test_410_stops_deliveries_for_good(dev: Services, handlers: tuple[Any, Any], receiver: Receiver) -> None:
    receiver.answer(Answer(410))
    job_id = _submit(dev, receiver.url)
    _run_all(dev, handlers)
    assert len(receiver.received) == 1
    assert [(a["outcome"], a["status_code"]) for a in _ledger(dev, job_id)] == [("stopped", 410)]


def test_retries_end_when_the_schedule_is_spent(dev: Services, handlers: tuple[Any, Any], receiver: Receiver) -> None:
    receiver.answer(*[Answer(500)] * 10)
    job_id = _submit(dev, receiver.url)
    _run_all(dev, handlers)
    assert len(receiver.received) == 4  # the schedule 0,0,0,0
    assert [a["outcome"] for a in _ledger(dev, job_id)] == ["retrying"] * 3 + ["failed"]
    assert _queue_counts(dev) == {"Visible": 0, "NotVisible": 0, "Delayed": 0}


def test_retry_after_postpones_the_next_attempt(dev: Services, handlers: tuple[Any, Any], receiver: Receiver) -> None:
    receiver.answer(Answer(429, {"Retry-After": "120"}))
    job_id = _submit(dev, receiver.url)
    _run_all(dev, handlers)
    (attempt,) = _ledger(dev, job_id)
    assert attempt["outcome"] == "retrying" and 110 <= attempt["next_attempt_at"] - time.time() <= 121
    assert len(receiver.received) == 1 and _queue_counts(dev)["Delayed"] == 1


def test_redirect_is_not_followed_and_counts_as_a_failed_attempt(dev: Services, handlers: tuple[Any, Any],
                                                                 receiver: Receiver) -> None:
    receiver.answer(Answer(307, {"Location": f"{receiver.url}/elsewhere"}))
    job_id = _submit(dev, f"{receiver.url}/hook")
    _run_all(dev, handlers)
    assert [r.path for r in receiver.received] == ["/hook", "/hook"]  # the retry, never /elsewhere
    assert [a["error"] for a in _ledger(dev, job_id)] == ["http_307", None]


def test_only_the_start_of_a_huge_answer_is_read(dev: Services, handlers: tuple[Any, Any],
                                                 receiver: Receiver) -> None:
    receiver.answer(Answer(200, endless_body=True))
    job_id = _submit(dev, receiver.url)
    _run_all(dev, handlers)
    (attempt,) = _ledger(dev, job_id)
    assert attempt["outcome"] == "delivered" and attempt["duration_ms"] < 2000  # reading it all would not end


def test_a_slow_receiver_times_out_and_is_retried(aws: tuple[boto3.session.Session, LocalResources],
                                                  fake_model: UvicornThread, receiver: Receiver) -> None:
    with installed_services(aws, fake_model, **DEV_SETTINGS, webhook_timeout_s=0.3) as svc:
        receiver.answer(Answer(200, delay_s=1.5))
        job_id = _submit(svc, receiver.url)
        _run_all(svc, (load_handler("worker", "lambda_handler"), load_handler("webhook", "lambda_handler")))
        assert [(a["outcome"], a["error"]) for a in _ledger(svc, job_id)] == [("retrying", "timeout"),
                                                                               ("delivered", None)]


# --- isolation: one slow receiver delays only its own webhooks ---------------------------------------------------

CAP = 4
# The first attempts hang long enough for a second consumer to walk the rest of the queue (about 2.5 s here for
# 60 messages, most of it moto); the later ones are brief, so that draining A's backlog stays short.
HANGING = {"webhook_connect_timeout_s": 1.0, "webhook_read_timeout_s": 6.0, "webhook_timeout_s": 7.0}
BRIEF = {"connect_timeout_s": 0.3, "read_timeout_s": 0.15, "timeout_s": 0.3}
TWO_TIMEOUTS = [(1, "retrying", "timeout"), (2, "failed", "timeout")]


def _finish_jobs(svc: Services, tenant: str, urls: list[str]) -> list[str]:
    """Jobs ended as their worker ends them (claim, terminal write, then the outbox), without the model."""
    jobs = svc.jobs.submit_jobs(tenant=tenant, items=[{"input": f"job {i}", "callback_url": url}
                                                      for i, url in enumerate(urls)])
    ids = [job.id for job in jobs if isinstance(job, Job)]
    for job_id in ids:
        claimed = svc.store.claim_job(job_id, lease_s=60).job
        assert claimed is not None
        assert svc.store.complete_job(claimed, output_text="done", usage=Usage(), price=Price(Decimal(0), True))
        assert svc.outbox.enqueue_final_event(job_id)
    return ids


def _attempts(svc: Services, tenant: str, job_ids: list[str]) -> dict[str, list[tuple[int, str, str | None]]]:
    return {job_id: [(a.attempt, a.outcome, a.error) for a in svc.outbox.list_deliveries(
        tenant=tenant, job_id=job_id, limit=100, cursor=None).items] for job_id in job_ids}


def test_tarpit_receivers_delay_only_their_own_webhooks(
        aws: tuple[boto3.session.Session, LocalResources], fake_model: UvicornThread, receiver: Receiver,
        caplog: pytest.LogCaptureFixture) -> None:
    # Given tenant A's 60 finished jobs, half for a receiver that accepts and never answers, half for one that
    # trickles an endless answer, queued ahead of tenant B's one job with a working receiver
    settings = {**DEV_SETTINGS, **HANGING, "webhook_retry_schedule": "0,1", "webhook_busy_host_delay_s": 1,
                "webhook_max_in_flight_per_host": CAP}
    tarpits = [Tarpit().start(), Tarpit(trickle_s=0.05).start()]
    try:
        with installed_services(aws, fake_model, **settings) as svc:
            a_jobs = _finish_jobs(svc, TENANT_A, [f"{tarpits[i % 2].url}/hook" for i in range(60)])
            (b_job,) = _finish_jobs(svc, TENANT_B, [f"{receiver.url}/hook"])
            webhook = load_handler("webhook", "lambda_handler")
            poller = _deliveries_poller(svc, webhook)

            # When one consumer's batch is held by A's receivers and a second consumer runs the next batches
            first = threading.Thread(target=poller.poll_once)
            first.start()
            eventually(lambda: all(t.open_now >= CAP for t in tarpits))
            for _ in range(20):
                if receiver.received:
                    break
                poller.poll_once()

            # Then B's webhook went out while A's first attempts hung, only the cap of them per receiver, and
            # before any of them had ended
            (b_request,) = receiver.received
            assert b_request.headers["webhook-id"] == svc.store.get_job(b_job).webhook_event_id  # type: ignore[union-attr]
            assert [(sum(at < b_request.at for at in t.opened_at), sum(at < b_request.at for at in t.closed_at))
                    for t in tarpits] == [(CAP, 0), (CAP, 0)]

            # And, with brief attempts from here on, every A webhook is tried on its schedule: nothing is lost
            svc.webhook_dispatcher.sender = WebhookSender(guard=svc.callback_guard, **BRIEF)
            first.join(timeout=30)
            # Batches of twice the cap: the drain is mostly attempts (few deferrals), and stays short.
            drain = QueuePoller(name="WebhookFunction", sqs=svc.sqs, queue_url=svc.settings.deliveries_queue_url,
                                queue_arn="arn:aws:sqs:us-east-1:123456789012:test-DeliveriesQueue",
                                handler=webhook, batch_size=2 * CAP)
            for _ in range(400):
                if not drain.poll_once(wait_s=1) and not any(_queue_counts(svc).values()):
                    break
            attempts = _attempts(svc, TENANT_A, a_jobs)
            assert [rows for rows in attempts.values() if rows != TWO_TIMEOUTS] == []
            assert _attempts(svc, TENANT_B, [b_job])[b_job] == [(1, "delivered", None)]
            assert len(receiver.received) == 1
            dead = svc.sqs.get_queue_attributes(QueueUrl=aws[1].refs["DeliveriesDeadLetterQueue"],
                                                AttributeNames=["ApproximateNumberOfMessages"])
    finally:
        for tarpit in tarpits:
            tarpit.stop()
    # Never more than the cap in flight at either receiver; the deliveries over it waited without being attempts
    # (no ledger row, the schedule untouched), and none was walked toward the dead-letter queue
    assert [(t.accepted, t.max_open <= CAP) for t in tarpits] == [(60, True), (60, True)]
    assert sum(r.getMessage().startswith("webhook deferred") for r in caplog.records) >= 60 - 2 * CAP
    assert dead["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_a_receiver_trickling_its_answer_is_cut_at_the_deadline(receiver: Receiver) -> None:
    # A byte every 50 ms never leaves the read timeout idle: only the deadline of the whole attempt ends it.
    tarpit = Tarpit(trickle_s=0.05).start()
    try:
        sender = WebhookSender(guard=CallbackGuard(allow_private=True, allow_http=True), connect_timeout_s=1,
                               read_timeout_s=1, timeout_s=0.5)
        result = asyncio.run(sender.send(f"{tarpit.url}/hook", b"{}", {}))
        assert (result.status_code, result.error) == (None, "timeout")
        assert eventually(lambda: tarpit.closed == 1)  # the sender hung up
    finally:
        tarpit.stop()


# --- duplicates and faults ----------------------------------------------------------------------------------------


def _finish_job_and_take_its_delivery(svc: Services, handlers: tuple[Any, Any], url: str) -> tuple[str, dict[str, Any]]:
    job_id = _submit(svc, url)
    run_worker(svc, handlers[0])
    (message,) = svc.sqs.receive_message(QueueUrl=svc.settings.deliveries_queue_url, MaxNumberOfMessages=10)["Messages"]
    return job_id, message


def _deliver(handler: Any, *bodies: str) -> dict[str, Any]:
    attributes = load_event("sqs_delivery")["Records"][0]["attributes"]  # as every real SQS record has them
    messages = [{"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": body, "Attributes": attributes}
                for i, body in enumerate(bodies)]
    return dict(handler(sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:test-DeliveriesQueue"),
                        FakeLambdaContext("WebhookFunction")))


def test_duplicate_delivery_message_sends_once(dev: Services, handlers: tuple[Any, Any], receiver: Receiver) -> None:
    job_id, message = _finish_job_and_take_its_delivery(dev, handlers, receiver.url)
    event = load_event("sqs_delivery")
    event["Records"][0]["body"] = message["Body"]
    twice = {"Records": [event["Records"][0], {**event["Records"][0], "messageId": "second-copy"}]}
    assert handlers[1](twice, FakeLambdaContext("WebhookFunction"))["batchItemFailures"] == []
    assert handlers[1](event, FakeLambdaContext("WebhookFunction"))["batchItemFailures"] == []
    assert len(receiver.received) == 1
    assert [a["outcome"] for a in _ledger(dev, job_id)] == ["delivered"]


def test_duplicate_jobs_message_of_a_finished_job_queues_no_second_delivery(
        dev: Services, handlers: tuple[Any, Any], receiver: Receiver) -> None:
    job_id = _submit(dev, receiver.url)
    dev.jobs.queue.send_job(job_id)  # SQS delivered the job twice
    _run_all(dev, handlers)
    assert len(receiver.received) == 1


def test_webhook_lost_between_terminal_write_and_enqueue_is_queued_by_the_sweeper(
        dev: Services, handlers: tuple[Any, Any], receiver: Receiver) -> None:
    with sqs_down(dev, queue_url=dev.settings.deliveries_queue_url):
        job_id = _submit(dev, receiver.url)
        # The jobs message is done with: holding it for the webhook would only walk it to the dead-letter queue.
        assert run_worker(dev, handlers[0])["batchItemFailures"] == []
        assert dev.store.get_job(job_id).status == "completed"  # type: ignore[union-attr]
        assert receiver.received == []
    assert dev.sweeper.sweep().webhooks_queued == 0  # not due yet: the job is looked at when its lease ends
    dev.clock.advance(dev.settings.job_lease_s + 1)  # type: ignore[attr-defined]
    assert dev.sweeper.sweep().webhooks_queued == 1
    _run_all(dev, handlers)
    assert len(receiver.received) == 1
    assert dev.store.get_job(job_id).webhook_enqueued  # type: ignore[union-attr]
    assert dev.sweeper.sweep().webhooks_queued == 0  # and never twice


def test_sender_that_died_mid_attempt_is_replaced_after_its_lease_not_before(
        dev: Services, handlers: tuple[Any, Any], receiver: Receiver) -> None:
    job_id, message = _finish_job_and_take_its_delivery(dev, handlers, receiver.url)
    parsed = DeliveryMessage.model_validate_json(message["Body"])
    job = dev.store.get_job(job_id)
    assert job is not None
    assert dev.webhook_store.claim_attempt(parsed, event_type="job.completed", expires_at=job.expires_at,
                                            lease_s=60)  # a sender took it and is still within its lease
    _deliver(handlers[1], message["Body"])
    assert receiver.received == []
    dev.clock.advance(60 + 1)  # type: ignore[attr-defined]  # that sender died: its lease ran out
    _deliver(handlers[1], message["Body"])
    assert len(receiver.received) == 1
    # Both stay in the ledger: the first sender may have reached the receiver before it died.
    assert [(a["attempt"], a["outcome"]) for a in _ledger(dev, job_id)] == [(1, "abandoned"), (1, "delivered")]


def test_next_attempt_lost_after_recording_is_queued_by_a_copy_of_the_message(
        dev: Services, handlers: tuple[Any, Any], receiver: Receiver) -> None:
    receiver.answer(Answer(500))
    job_id, message = _finish_job_and_take_its_delivery(dev, handlers, receiver.url)
    with sqs_down(dev, queue_url=dev.settings.deliveries_queue_url):
        assert len(_deliver(handlers[1], message["Body"])["batchItemFailures"]) == 1
    _deliver(handlers[1], message["Body"])  # SQS hands the failed message back
    _run_all(dev, handlers)
    assert len(receiver.received) == 2
    assert [(a["attempt"], a["outcome"]) for a in _ledger(dev, job_id)] == [(1, "retrying"), (2, "delivered")]


def test_message_not_yet_due_is_sent_on_with_a_delay_instead_of_early(
        dev: Services, handlers: tuple[Any, Any], receiver: Receiver) -> None:
    _, message = _finish_job_and_take_its_delivery(dev, handlers, receiver.url)
    later = DeliveryMessage.model_validate_json(message["Body"]).model_copy(update={"due_at": time.time() + 5 * 3600})
    assert _deliver(handlers[1], later.model_dump_json())["batchItemFailures"] == []
    assert receiver.received == []
    assert _queue_counts(dev)["Delayed"] == 1  # chained: SQS holds it 15 min at most, then it is sent on again


def test_poison_deliveries_message_is_reported_failed(dev: Services, handlers: tuple[Any, Any]) -> None:
    assert _deliver(handlers[1], '{"not": "a delivery"}')["batchItemFailures"] == [{"itemIdentifier": "m0"}]


# --- the send-time guard ------------------------------------------------------------------------------------------


def _resolving_to(address: str) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        return [address]
    return resolve


@pytest.mark.parametrize(("allow_private", "reaches_receiver"), [(False, False), (True, True)])
def test_send_time_guard_checks_the_resolved_address_and_connects_to_it(
        dev: Services, handlers: tuple[Any, Any], receiver: Receiver, allow_private: bool,
        reaches_receiver: bool) -> None:
    # A public-looking name that resolves to loopback (DNS rebinding): the submit-time check cannot see it.
    url = f"http://hooks.example.com:{receiver.port}/hook"
    dev.webhook_dispatcher.sender = WebhookSender(guard=CallbackGuard(allow_private=allow_private, allow_http=True),
                                                 resolver=_resolving_to("127.0.0.1"))
    job_id = _submit(dev, url)
    _run_all(dev, handlers)
    ledger = _ledger(dev, job_id)
    if reaches_receiver:
        (request,) = receiver.received
        # the checked address was used, and the name kept for the Host header
        assert request.headers["host"] == f"hooks.example.com:{receiver.port}"
        assert [a["outcome"] for a in ledger] == ["delivered"]
    else:
        assert receiver.received == []
        assert [(a["outcome"], a["error"]) for a in ledger] == [("failed", "callback_url_forbidden")]


@pytest.mark.parametrize("address", EMBEDDED_LOOPBACK)
def test_a_name_resolving_to_an_ipv4_address_inside_ipv6_is_refused_at_send_even_with_private_allowed(
        dev: Services, handlers: tuple[Any, Any], receiver: Receiver, address: str) -> None:
    dev.webhook_dispatcher.sender = WebhookSender(guard=CallbackGuard(allow_private=True, allow_http=True),
                                                 resolver=_resolving_to(address))
    job_id = _submit(dev, f"http://hooks.example.com:{receiver.port}/hook")

    _run_all(dev, handlers)

    assert receiver.received == []
    assert [(a["outcome"], a["error"]) for a in _ledger(dev, job_id)] == [("failed", "callback_url_forbidden")]


# --- secrets, redelivery, tenants ----------------------------------------------------------------------------------


def test_a_new_tenant_has_one_signing_secret(dev_api: TestClient) -> None:
    (secret,) = dev_api.get("/v1/webhook-secrets").json()["data"]
    assert secret["secret"].startswith("whsec_") and secret["id"].startswith("whs_") and secret["expires_at"] is None
    other = dev_api.get("/v1/webhook-secrets", headers={"Authorization": f"Bearer {KEY_B}"}).json()["data"]
    assert [s["secret"] for s in other] != [secret["secret"]]


def test_rotation_keeps_the_previous_secret_for_the_overlap_and_signs_with_both(
        dev: Services, dev_api: TestClient, handlers: tuple[Any, Any], receiver: Receiver) -> None:
    (old,) = dev_api.get("/v1/webhook-secrets").json()["data"]
    rotated = dev_api.post("/v1/webhook-secrets/rotate")
    assert rotated.status_code == 201
    new = rotated.json()
    listed = dev_api.get("/v1/webhook-secrets").json()["data"]
    assert [s["id"] for s in listed] == [new["id"], old["id"]]  # newest first
    assert 86_390 <= listed[1]["expires_at"] - time.time() <= 86_400 and listed[0]["expires_at"] is None
    _submit(dev, receiver.url)
    _run_all(dev, handlers)
    (request,) = receiver.received
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (old["secret"], new["secret"]):
        Webhook(secret).verify(request.body, request.headers)


def test_rotation_without_overlap_retires_the_previous_secret_at_once(dev_api: TestClient) -> None:
    new = dev_api.post("/v1/webhook-secrets/rotate", json={"overlap_s": 0}).json()
    assert [s["id"] for s in dev_api.get("/v1/webhook-secrets").json()["data"]] == [new["id"]]


def test_rotation_with_the_same_idempotency_key_rotates_once(dev_api: TestClient) -> None:
    first = dev_api.post("/v1/webhook-secrets/rotate", headers={"Idempotency-Key": "rot-1"})
    again = dev_api.post("/v1/webhook-secrets/rotate", headers={"Idempotency-Key": "rot-1"})
    assert first.json() == again.json() and again.headers["Idempotent-Replayed"] == "true"
    assert len(dev_api.get("/v1/webhook-secrets").json()["data"]) == 2


def test_rotations_keep_at_most_three_active_secrets_and_retire_the_oldest(
        dev: Services, dev_api: TestClient, handlers: tuple[Any, Any], receiver: Receiver) -> None:
    rotated = [dev_api.post("/v1/webhook-secrets/rotate").json()["id"] for _ in range(10)]
    listed = dev_api.get("/v1/webhook-secrets").json()["data"]
    assert [s["id"] for s in listed] == rotated[::-1][:3]  # the newest three; the rest are gone
    stored = dev.table.query(KeyConditionExpression=Key("pk").eq(tenant_partition(TENANT_A))
                             & Key("sk").begins_with(SECRET_PREFIX))["Items"]
    assert len(stored) == 3  # the others are deleted, not merely expired
    _submit(dev, receiver.url)
    _run_all(dev, handlers)
    (request,) = receiver.received
    assert len(request.headers["webhook-signature"].split(" ")) == 3


def test_redeliveries_of_a_job_are_bounded_per_hour(dev: Services, dev_api: TestClient, handlers: tuple[Any, Any],
                                                    receiver: Receiver) -> None:
    job_id = _submit(dev, receiver.url)
    _run_all(dev, handlers)
    answers = []
    for _ in range(8):
        answers.append(dev_api.post(f"/v1/jobs/{job_id}/deliveries/redeliver"))
        _run_all(dev, handlers)
    assert [a.status_code for a in answers] == [202] * 5 + [429] * 3
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "too_many_redeliveries"
    assert 3590 <= int(refused.headers["Retry-After"]) <= 3600
    assert len(receiver.received) == 1 + 5
    dev.clock.advance(3601)  # type: ignore[attr-defined]  # the next hour
    assert dev_api.post(f"/v1/jobs/{job_id}/deliveries/redeliver").status_code == 202


def test_redeliver_sends_the_final_event_again_with_the_same_webhook_id(
        dev: Services, dev_api: TestClient, handlers: tuple[Any, Any], receiver: Receiver) -> None:
    job_id = _submit(dev, receiver.url)
    _run_all(dev, handlers)
    response = dev_api.post(f"/v1/jobs/{job_id}/deliveries/redeliver")
    assert response.status_code == 202
    assert response.json()["attempt"] == 2 and response.json()["status"] == "queued"
    _run_all(dev, handlers)
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == response.json()["webhook_id"]
    assert [(a["attempt"], a["outcome"]) for a in _ledger(dev, job_id)] == [(1, "delivered"), (2, "delivered")]


def test_redeliver_needs_a_finished_job_with_a_callback_url(dev: Services, dev_api: TestClient,
                                                            receiver: Receiver) -> None:
    queued = _submit(dev, receiver.url)
    without = dev.jobs.submit_job(tenant=TENANT_A, request=JobRequest(input="no hook")).id
    for job_id, code in ((queued, "job_not_finished"), (without, "no_callback_url")):
        response = dev_api.post(f"/v1/jobs/{job_id}/deliveries/redeliver")
        assert response.status_code == 409 and response.json()["error"]["code"] == code


def test_another_tenants_deliveries_are_404(dev: Services, dev_api: TestClient, handlers: tuple[Any, Any],
                                           receiver: Receiver) -> None:
    job_id = _submit(dev, receiver.url)
    _run_all(dev, handlers)
    other = {"Authorization": f"Bearer {KEY_B}"}
    assert dev_api.get(f"/v1/jobs/{job_id}/deliveries", headers=other).status_code == 404
    assert dev_api.post(f"/v1/jobs/{job_id}/deliveries/redeliver", headers=other).status_code == 404
    assert len(receiver.received) == 1


def test_a_long_ledger_comes_in_pages_oldest_first(dev: Services, dev_api: TestClient, receiver: Receiver) -> None:
    job_id, other_job = _submit(dev, receiver.url), _submit(dev, receiver.url)
    webhook_id = "msg_" + "0" * 26
    for attempt in range(1, 6):  # five redeliveries' worth of attempts, each claimed and then failed
        message = DeliveryMessage(job_id=job_id, webhook_id=webhook_id, attempt=attempt, first_attempt=attempt,
                                  due_at=0)
        claim = dev.webhook_store.claim_attempt(message, event_type="job.completed", expires_at=None, lease_s=60)
        assert claim is not None
        dev.webhook_store.record_attempt(message, claim=claim, outcome="failed", status_code=500, duration_ms=1,
                                         error=None, next_attempt_at=None)

    attempts: list[int] = []
    cursor, pages = None, 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = dev_api.get(f"/v1/jobs/{job_id}/deliveries", params=params)
        assert page.status_code == 200 and len(page.json()["data"]) <= 2
        attempts += [a["attempt"] for a in page.json()["data"]]
        pages += 1
        if (cursor := page.json()["next_cursor"]) is None:
            break
        # A cursor belongs to its job's ledger: another job's is refused, never read.
        refused = dev_api.get(f"/v1/jobs/{other_job}/deliveries", params={"cursor": cursor})
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_cursor"

    assert attempts == [1, 2, 3, 4, 5] and pages == 3


def test_logs_never_hold_the_prompt_the_output_or_a_secret(dev: Services, handlers: tuple[Any, Any],
                                                           receiver: Receiver, caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    receiver.answer(Answer(500))
    _submit(dev, receiver.url, prompt="my confidential prompt")
    _run_all(dev, handlers)
    logs = "\n".join(json.dumps(record.__dict__, default=str) for record in caplog.records)  # extra keys included
    assert len(receiver.received) == 2 and "webhook attempt" in logs and "http_500" in logs
    for secret in _secrets(dev):
        assert secret not in logs and secret.removeprefix("whsec_")[:20] not in logs
    assert "confidential" not in logs
    assert json.loads(receiver.received[0].body)["data"]["output"]["text"] == "Echo: my confidential prompt"
