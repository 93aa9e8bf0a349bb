"""template.yaml's webhook delivery path: queue, dead-letter queue, WebhookFunction, least privilege, no shortcuts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_template_iam import function_policies

ROOT = Path(__file__).resolve().parents[2]


def _resource(template: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(template["Resources"][name]["Properties"])


def test_deliveries_queue_redrives_to_its_dead_letter_queue(template: dict[str, Any]) -> None:
    queue = _resource(template, "DeliveriesQueue")
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeliveriesDeadLetterQueue", "Arn"]}
    assert _resource(template, "DeliveriesDeadLetterQueue")["MessageRetentionPeriod"] == 1_209_600


def test_deliveries_visibility_is_at_least_six_times_the_webhook_timeout(template: dict[str, Any]) -> None:
    timeout = _resource(template, "WebhookFunction")["Timeout"]
    assert _resource(template, "DeliveriesQueue")["VisibilityTimeout"] >= 6 * timeout
    assert timeout >= 30  # a batch of sends, each bounded at AIJOBS_WEBHOOK_TIMEOUT_S, plus the ledger writes


def test_a_webhook_attempt_is_bounded_well_inside_the_function_and_its_lease(template: dict[str, Any]) -> None:
    from aijobs.settings import Settings
    from aijobs.webhooks.dispatcher import ATTEMPT_LEASE_S

    function = _resource(template, "WebhookFunction")
    variables = function["Environment"]["Variables"]
    settings = Settings(**{name.removeprefix("AIJOBS_").lower(): value for name, value in variables.items()
                           if name.startswith("AIJOBS_WEBHOOK_") and isinstance(value, str)})
    assert settings.webhook_connect_timeout_s <= settings.webhook_read_timeout_s <= settings.webhook_timeout_s
    # The batch's attempts run at once: one deadline, its ledger writes and the deferrals fit twice over.
    assert 2 * settings.webhook_timeout_s <= function["Timeout"]
    assert settings.webhook_timeout_s < ATTEMPT_LEASE_S  # else a live sender's attempt would be taken over


def test_webhook_function_caps_the_attempts_in_flight_per_receiver_host(template: dict[str, Any]) -> None:
    from aijobs.settings import Settings

    variables = _resource(template, "WebhookFunction")["Environment"]["Variables"]
    assert variables["AIJOBS_WEBHOOK_MAX_IN_FLIGHT_PER_HOST"] == {"Ref": "WebhookMaxInFlightPerHost"}
    cap = template["Parameters"]["WebhookMaxInFlightPerHost"]["Default"]
    assert cap == Settings().webhook_max_in_flight_per_host
    # The local stack runs as many consumers as Lambda may: more than the cap, so one receiver that never answers
    # cannot hold them all.
    assert template["Parameters"]["WebhookMaximumConcurrency"]["Default"] > cap


def test_webhook_function_consumes_deliveries_in_batches_reporting_item_failures(template: dict[str, Any]) -> None:
    events = _resource(template, "WebhookFunction")["Events"]
    (sqs,) = [event["Properties"] for event in events.values() if event["Type"] == "SQS"]
    assert sqs["Queue"] == {"Fn::GetAtt": ["DeliveriesQueue", "Arn"]}
    assert sqs["BatchSize"] >= 10
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_webhook_function_reads_and_writes_only_the_jobs_table_and_its_queue(template: dict[str, Any]) -> None:
    policies = _resource(template, "WebhookFunction")["Policies"]
    statements = [s for p in policies if "Statement" in p for s in p["Statement"]]
    outputs, table = statements
    assert outputs["Action"] == "s3:GetObject"  # a large output, read back for the payload
    assert outputs["Resource"] == {"Fn::Sub": "${ResultsBucket.Arn}/outputs/*"}
    assert table["Resource"] == {"Fn::GetAtt": ["JobsTable", "Arn"]}
    assert set(table["Action"]) == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"}
    sqs = [p for p in policies if "Statement" not in p]
    assert sqs == [{"SQSPollerPolicy": {"QueueName": {"Fn::GetAtt": ["DeliveriesQueue", "QueueName"]}}},
                   {"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["DeliveriesQueue", "QueueName"]}}}]
    assert "secretsmanager" not in json.dumps(policies)


@pytest.mark.parametrize("function", ["WorkerFunction", "ApiFunction", "StreamFunction"])
def test_worker_and_api_may_queue_deliveries(template: dict[str, Any], function: str) -> None:
    policies = function_policies(template, function)
    statements = [s for p in policies if "Statement" in p for s in p["Statement"]]
    assert ({"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["DeliveriesQueue", "QueueName"]}}} in policies
            or {"Effect": "Allow", "Action": "sqs:SendMessage",
                "Resource": {"Fn::GetAtt": ["DeliveriesQueue", "Arn"]}} in statements)


def test_every_function_is_told_the_deliveries_queue(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["AIJOBS_DELIVERIES_QUEUE_URL"] == {"Ref": "DeliveriesQueue"}


def test_deployed_stack_keeps_the_full_callback_guard(template: dict[str, Any]) -> None:
    # The settings default to https-only and public addresses; nothing in the template may relax them.
    text = (ROOT / "template.yaml").read_text()
    assert "AIJOBS_ALLOW_PRIVATE_CALLBACKS" not in text and "AIJOBS_ALLOW_HTTP_CALLBACKS" not in text
    assert "AIJOBS_WEBHOOK_RETRY_SCHEDULE" not in text


def test_delivery_queues_are_outputs_and_the_dead_letter_queue_alarms(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert outputs["DeliveriesQueueUrl"]["Value"] == {"Ref": "DeliveriesQueue"}
    assert outputs["DeliveriesDeadLetterQueueUrl"]["Description"]
    alarm = _resource(template, "DeliveriesDeadLetterQueueAlarm")
    assert alarm["Dimensions"] == [{"Name": "QueueName",
                                    "Value": {"Fn::GetAtt": ["DeliveriesDeadLetterQueue", "QueueName"]}}]
