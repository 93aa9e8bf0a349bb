"""template.yaml's streaming front: what a client and an operator rely on, as rules rather than a snapshot."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aijobs.api import create_app
from aijobs.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
STREAM_URL = {"Fn::GetAtt": ["StreamFunctionUrl", "FunctionUrl"]}  # the AWS::Lambda::Url SAM names <Function>Url


def _function(template: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(template["Resources"][name]["Properties"])


def _variables(template: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(_function(template, name)["Environment"]["Variables"])


def test_the_front_is_a_public_function_url_that_streams(template: dict[str, Any]) -> None:
    stream = _function(template, "StreamFunction")

    # NONE: the app checks its API keys on every route, as behind the HTTP API (SAM adds the public invoke
    # permissions; tests/integration/test_sam.py checks them in the translated template).
    assert stream["FunctionUrlConfig"] == {"AuthType": "NONE", "InvokeMode": "RESPONSE_STREAM"}


def test_the_front_runs_the_web_adapters_arm64_layer_with_the_app_on_top_of_core(template: dict[str, Any]) -> None:
    stream = _function(template, "StreamFunction")
    core, adapter = stream["Layers"]

    assert core == {"Ref": "CoreLayer"}
    assert re.fullmatch(r"arn:aws:lambda:\$\{AWS::Region\}:753240598075:layer:LambdaAdapterLayerArm64:\d+",
                        adapter["Fn::Sub"])
    assert "Architectures" not in stream and template["Globals"]["Function"]["Architectures"] == ["arm64"]
    assert stream["Handler"] == "run.sh" and stream["CodeUri"] == "functions/stream/"
    assert os.access(ROOT / "functions" / "stream" / "run.sh", os.X_OK)


def test_the_adapter_wraps_the_runtime_streams_and_waits_for_the_apps_health_route(template: dict[str, Any]) -> None:
    variables = _variables(template, "StreamFunction")

    assert variables["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    invoke_mode = _function(template, "StreamFunction")["FunctionUrlConfig"]["InvokeMode"]
    assert variables["AWS_LWA_INVOKE_MODE"] == invoke_mode.lower() == "response_stream"
    assert variables["AWS_LWA_PORT"] == "8000"
    with TestClient(create_app()) as client:  # in-process; the path must answer 2xx to a caller with no key
        assert client.get(variables["AWS_LWA_READINESS_CHECK_PATH"]).status_code == 200


def test_a_stream_ends_on_its_own_well_before_lambda_cuts_it(template: dict[str, Any]) -> None:
    stream = _function(template, "StreamFunction")
    longest = Settings(stream_max_s=_variables(template, "StreamFunction")["AIJOBS_STREAM_MAX_S"]).stream_max_s

    assert stream["Timeout"] <= 900  # Lambda's ceiling
    assert longest + 60 <= stream["Timeout"]  # a minute to close cleanly (the client resumes with Last-Event-ID)


@pytest.mark.parametrize("function", ["ApiFunction", "StreamFunction"])
def test_both_functions_serving_the_api_hold_exactly_one_managed_policy_the_same(
        template: dict[str, Any], function: str) -> None:
    # ApiAccessPolicy, and the admin key's and the model's secrets when set (test_template.py checks those)
    policies = _function(template, function)["Policies"]
    assert policies[0] == {"Ref": "ApiAccessPolicy"} and [p["Fn::If"][0] for p in policies[1:]] == [
        "HasAdminKeySecret", "HasModelApiKeySecret", "HasModelBackendSecrets"]
    assert policies == _function(template, "ApiFunction")["Policies"]
    assert template["Resources"]["ApiAccessPolicy"]["Type"] == "AWS::IAM::ManagedPolicy"


def test_the_front_gets_the_apis_environment_and_memory_but_not_its_own_url(template: dict[str, Any]) -> None:
    api, stream = _variables(template, "ApiFunction"), _variables(template, "StreamFunction")

    assert {k: v for k, v in api.items() if k != "AIJOBS_STREAM_URL"}.items() <= stream.items()
    assert "AIJOBS_STREAM_URL" not in stream  # the app names the URL the request came in on: its own
    assert _function(template, "StreamFunction")["MemorySize"] == _function(template, "ApiFunction")["MemorySize"]


def test_jobs_behind_the_http_api_name_the_front_as_their_stream_url(template: dict[str, Any]) -> None:
    assert _variables(template, "ApiFunction")["AIJOBS_STREAM_URL"] == STREAM_URL
    output = template["Outputs"]["StreamUrl"]
    assert output["Value"] == STREAM_URL
    assert "every route" in output["Description"] and "v1/jobs/{id}/stream" in output["Description"]


def test_the_fronts_throttle_is_its_reserved_concurrency_and_zero_leaves_it_unreserved(
        template: dict[str, Any]) -> None:
    reserved = _function(template, "StreamFunction")["ReservedConcurrentExecutions"]

    assert reserved == {"Fn::If": ["HasStreamReservedConcurrency", {"Ref": "StreamReservedConcurrency"},
                                   {"Ref": "AWS::NoValue"}]}
    assert template["Conditions"]["HasStreamReservedConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "StreamReservedConcurrency"}, 0]}]}
    parameter = template["Parameters"]["StreamReservedConcurrency"]
    assert parameter["MinValue"] == 0 and parameter["Default"] > 0


def test_the_front_logs_with_retention(template: dict[str, Any]) -> None:
    log_group = template["Resources"]["StreamFunctionLogGroup"]["Properties"]

    assert log_group == {"LogGroupName": {"Fn::Sub": "/aws/lambda/${StreamFunction}"},
                         "RetentionInDays": {"Ref": "LogRetentionDays"}}


@pytest.mark.parametrize(("alarm", "metric"), [("StreamErrorsAlarm", "Errors"), ("StreamThrottlesAlarm", "Throttles")])
def test_the_front_raises_alarms_on_errors_and_throttles(template: dict[str, Any], alarm: str, metric: str) -> None:
    properties = template["Resources"][alarm]["Properties"]

    assert (properties["Namespace"], properties["MetricName"]) == ("AWS/Lambda", metric)
    assert properties["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "StreamFunction"}}]
    assert (properties["Threshold"], properties["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert properties["AlarmActions"] == {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}],
                                                     {"Ref": "AWS::NoValue"}]}
