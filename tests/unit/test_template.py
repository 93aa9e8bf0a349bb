"""Checks of template.yaml that `sam validate --lint` does not make."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from aijobs.settings import Settings
from tests.unit.test_template_iam import function_policies

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"


def _resources(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == type_}


def _function_property(template: dict[str, Any], function: dict[str, Any], key: str) -> Any:
    globals_ = template.get("Globals", {}).get("Function", {})
    return function["Properties"].get(key, globals_.get(key))


def test_every_function_runs_python313_on_arm64(template: dict[str, Any]) -> None:
    functions = _resources(template, "AWS::Serverless::Function")

    assert functions
    for name, function in functions.items():
        assert _function_property(template, function, "Runtime") == "python3.13", name
        assert _function_property(template, function, "Architectures") == ["arm64"], name


def test_core_layer_targets_python313_on_arm64(template: dict[str, Any]) -> None:
    layer = template["Resources"]["CoreLayer"]

    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}


def test_every_build_is_a_makefile_target_that_exists(template: dict[str, Any]) -> None:
    for name, resource in template["Resources"].items():
        if resource["Type"] not in {"AWS::Serverless::Function", "AWS::Serverless::LayerVersion"}:
            continue
        properties = resource["Properties"]
        source_dir = ROOT / (properties.get("CodeUri") or properties["ContentUri"])

        assert resource["Metadata"]["BuildMethod"] == "makefile", name
        assert f"build-{name}:" in (source_dir / "Makefile").read_text(), name


# The priority lanes: each its queue, its dead-letter queue and its worker concurrency parameter.
LANES = {"high": ("JobsHighQueue", "JobsHighDeadLetterQueue", "WorkerHighMaximumConcurrency"),
         "normal": ("JobsQueue", "JobsDeadLetterQueue", "WorkerMaximumConcurrency"),
         "low": ("JobsLowQueue", "JobsLowDeadLetterQueue", "WorkerLowMaximumConcurrency")}


@pytest.mark.parametrize("lane", LANES)
def test_queue_visibility_is_at_least_six_times_worker_timeout(template: dict[str, Any], lane: str) -> None:
    worker_timeout = template["Resources"]["WorkerFunction"]["Properties"]["Timeout"]
    queue = template["Resources"][LANES[lane][0]]["Properties"]

    assert queue["VisibilityTimeout"] >= 6 * worker_timeout


@pytest.mark.parametrize("lane", LANES)
def test_each_jobs_queue_redrives_to_its_own_dead_letter_queue(template: dict[str, Any], lane: str) -> None:
    queue, dead_letters, _ = LANES[lane]
    properties = template["Resources"][queue]["Properties"]
    normal = template["Resources"]["JobsQueue"]["Properties"]

    assert properties["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [dead_letters, "Arn"]}
    assert properties["RedrivePolicy"]["maxReceiveCount"] > template["Parameters"]["MaxAttempts"]["Default"]
    assert {k: v for k, v in properties.items() if k != "RedrivePolicy"} == {
        k: v for k, v in normal.items() if k != "RedrivePolicy"}  # retention, visibility, encryption: as normal's
    assert properties["RedrivePolicy"]["maxReceiveCount"] == normal["RedrivePolicy"]["maxReceiveCount"]
    assert template["Resources"][dead_letters]["Properties"] == template["Resources"]["JobsDeadLetterQueue"][
        "Properties"]


@pytest.mark.parametrize("lane", LANES)
def test_worker_consumes_each_lane_in_batches_reporting_item_failures(template: dict[str, Any], lane: str) -> None:
    queue, _, concurrency = LANES[lane]
    events = template["Resources"]["WorkerFunction"]["Properties"]["Events"]
    (sqs,) = [event["Properties"] for event in events.values()
              if event["Type"] == "SQS" and event["Properties"]["Queue"] == {"Fn::GetAtt": [queue, "Arn"]}]

    assert sqs["BatchSize"] >= 10
    assert sqs["MaximumBatchingWindowInSeconds"] >= 1
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert sqs["ScalingConfig"]["MaximumConcurrency"] == {"Ref": concurrency}
    assert template["Parameters"][concurrency]["MinValue"] == 2  # Lambda's least for an SQS event source


def test_the_low_lane_runs_fewer_jobs_at_once_than_the_others_by_default(template: dict[str, Any]) -> None:
    default = {lane: template["Parameters"][parameter]["Default"] for lane, (_, _, parameter) in LANES.items()}

    assert default["low"] < default["normal"] and default["low"] < default["high"]
    events = template["Resources"]["WorkerFunction"]["Properties"]["Events"].values()
    sources = [event for event in events if event["Type"] == "SQS"]
    assert len(sources) == len(LANES)  # no other queue feeds the worker


@pytest.mark.parametrize("lane", LANES)
def test_each_lanes_dead_letter_queue_raises_the_alarm_the_normal_ones_does(template: dict[str, Any],
                                                                            lane: str) -> None:
    dead_letters = LANES[lane][1]
    alarms = [a["Properties"] for a in _resources(template, "AWS::CloudWatch::Alarm").values()
              if a["Properties"].get("Dimensions") == [{"Name": "QueueName",
                                                        "Value": {"Fn::GetAtt": [dead_letters, "QueueName"]}}]]
    normal = template["Resources"]["JobsDeadLetterQueueAlarm"]["Properties"]

    assert len(alarms) == 1
    assert {k: v for k, v in alarms[0].items() if k not in ("Dimensions", "AlarmDescription")} == {
        k: v for k, v in normal.items() if k not in ("Dimensions", "AlarmDescription")}
    assert lane in alarms[0]["AlarmDescription"]


def test_every_lane_is_granted_and_named_wherever_the_normal_lane_is(template: dict[str, Any]) -> None:
    """A lane left out of one function's grants would strand its jobs there (a release, a re-send, a fire)."""
    for name, resource in template["Resources"].items():
        if resource["Type"] not in ("AWS::Serverless::Function", "AWS::IAM::ManagedPolicy", "AWS::IAM::Role"):
            continue
        text = json.dumps(resource)
        counts = {lane: (text.count(f'"{queue}"'), text.count(f'"{dead_letters}"'))
                  for lane, (queue, dead_letters, _) in LANES.items()}
        assert counts["high"] == counts["normal"] == counts["low"], name


def test_every_function_has_a_log_group_with_retention(template: dict[str, Any]) -> None:
    log_groups = {
        json.dumps(res["Properties"]["LogGroupName"]): res["Properties"]
        for res in _resources(template, "AWS::Logs::LogGroup").values()
    }

    for name in _resources(template, "AWS::Serverless::Function"):
        log_group = log_groups.get(json.dumps({"Fn::Sub": f"/aws/lambda/${{{name}}}"}))
        assert log_group is not None, f"{name} has no log group"
        assert log_group["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name


def test_the_api_is_bounded_for_all_callers_and_logs_each_request(template: dict[str, Any]) -> None:
    api = template["Resources"]["HttpApi"]["Properties"]
    assert api["DefaultRouteSettings"] == {"ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
                                           "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"}}
    access = api["AccessLogSettings"]
    assert access["DestinationArn"] == {"Fn::GetAtt": ["HttpApiAccessLogGroup", "Arn"]}
    assert json.loads(access["Format"].replace("\n", ""))["status"] == "$context.status"
    assert not re.search(r"header|querystring|body|authorization", access["Format"], re.IGNORECASE)
    log_group = template["Resources"]["HttpApiAccessLogGroup"]["Properties"]
    assert log_group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    function = template["Resources"]["ApiFunction"]["Properties"]
    assert function["ReservedConcurrentExecutions"]["Fn::If"][1] == {"Ref": "ApiReservedConcurrency"}
    alarm = template["Resources"]["ApiThrottlesAlarm"]["Properties"]
    assert alarm["MetricName"] == "Throttles" and alarm["Dimensions"][0]["Value"] == {"Ref": "ApiFunction"}


def test_template_holds_no_secret_value(template: dict[str, Any]) -> None:
    text = TEMPLATE_PATH.read_text()

    assert not re.search(r"\bsk-[A-Za-z0-9_-]+", text)
    assert not re.search(r"\bwhsec_[A-Za-z0-9+/=]+", text)
    assert not re.search(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", text)
    assert template["Parameters"]["ModelApiKeySecretArn"]["Default"] == ""


@pytest.mark.parametrize("function", ["ApiFunction", "StreamFunction"])
def test_the_functions_serving_the_api_read_only_the_admin_and_model_key_secrets_and_only_when_set(
        template: dict[str, Any], function: str) -> None:
    properties = template["Resources"][function]["Properties"]
    conditional = [p["Fn::If"] for p in properties["Policies"] if isinstance(p, dict) and "Fn::If" in p]
    unconditional = [p for p in properties["Policies"] if not (isinstance(p, dict) and "Fn::If" in p)]

    assert unconditional and "secretsmanager" not in json.dumps(
        [function_policies(template, function)[0]]).lower()  # ApiAccessPolicy: no secret at all
    assert "secretsmanager" not in json.dumps(unconditional).lower()
    # the admin key (the admin API), and the model's keys (a search embeds its query at once)
    assert conditional == [[condition, {"Statement": [{
        "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": {"Ref": secret}}]},
        {"Ref": "AWS::NoValue"}] for condition, secret in [("HasAdminKeySecret", "AdminKeySecretArn"),
                                                           ("HasModelApiKeySecret", "ModelApiKeySecretArn"),
                                                           ("HasModelBackendSecrets", "ModelBackendSecretArns")]]
    assert properties["Environment"]["Variables"]["AIJOBS_MODEL_API_KEY_SECRET_ARN"] == {"Ref": "ModelApiKeySecretArn"}
    assert properties["Environment"]["Variables"]["AIJOBS_ADMIN_KEY_SECRET_ARN"] == {"Ref": "AdminKeySecretArn"}
    assert template["Conditions"]["HasAdminKeySecret"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AdminKeySecretArn"}, ""]}]}
    assert template["Parameters"]["AdminKeySecretArn"]["Default"] == ""  # the admin API is off unless asked for


@pytest.mark.parametrize("function", ["WorkerFunction", "WebhookFunction", "SchedulerFunction", "SweeperFunction"])
def test_no_other_function_can_read_the_admin_key(template: dict[str, Any], function: str) -> None:
    assert "AdminKeySecretArn" not in json.dumps(template["Resources"][function])


def test_every_function_gets_the_default_limits_from_the_parameters(template: dict[str, Any]) -> None:
    from aijobs.settings import Settings

    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    parameters = template["Parameters"]
    defaults = Settings().default_limits()
    for name, field in [("RequestsPerMinute", "requests_per_minute"), ("TokensPerMinute", "tokens_per_minute"),
                        ("ConcurrentJobs", "concurrent_jobs"), ("DailyCostUsd", "daily_cost_usd"),
                        ("DailyCostSoftUsd", "daily_cost_soft_usd")]:
        assert variables[f"AIJOBS_LIMIT_{field.upper()}"] == {"Ref": f"Limit{name}"}
        assert parameters[f"Limit{name}"]["Type"] == "Number"
        # the template's default is the code's: a stack and the local one start alike
        assert float(parameters[f"Limit{name}"]["Default"]) == getattr(defaults, field)


def test_worker_reads_only_the_configured_secret_and_only_when_set(template: dict[str, Any]) -> None:
    policies = template["Resources"]["WorkerFunction"]["Properties"]["Policies"]
    conditional = [p["Fn::If"] for p in policies if isinstance(p, dict) and "Fn::If" in p]

    secret_policy, backends_policy = [c for c in conditional if "secretsmanager" in json.dumps(c)]
    condition, when_set, when_empty = secret_policy
    assert condition == "HasModelApiKeySecret"
    assert when_set["Statement"] == [
        {
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": {"Ref": "ModelApiKeySecretArn"},
        }
    ]
    assert when_empty == {"Ref": "AWS::NoValue"}
    assert template["Conditions"]["HasModelApiKeySecret"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ModelApiKeySecretArn"}, ""]}]
    }
    # the model backends' secrets (ModelBackends): exactly the ARNs listed, and nothing when none is
    assert backends_policy == ["HasModelBackendSecrets", {"Statement": [{
        "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": {"Ref": "ModelBackendSecretArns"}}]},
        {"Ref": "AWS::NoValue"}]
    assert template["Conditions"]["HasModelBackendSecrets"] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "ModelBackendSecretArns"}]}, ""]}]}
    assert template["Parameters"]["ModelBackendSecretArns"] == {**template["Parameters"]["ModelBackendSecretArns"],
                                                                 "Type": "CommaDelimitedList", "Default": ""}


def test_the_model_backends_and_their_secrets_reach_the_worker_and_the_api_only(
        template: dict[str, Any]) -> None:
    resources = template["Resources"]
    for function in ("WorkerFunction", "ApiFunction", "StreamFunction"):
        variables = resources[function]["Properties"]["Environment"]["Variables"]
        assert variables["AIJOBS_MODEL_BACKENDS"] == {"Ref": "ModelBackends"}
    for function in ("WebhookFunction", "SchedulerFunction", "SweeperFunction"):
        assert "ModelBackendSecretArns" not in json.dumps(resources[function])
        assert "ModelApiKeySecretArn" not in json.dumps(resources[function])
    assert template["Parameters"]["ModelBackends"]["Default"] == ""  # one backend unless asked for


@pytest.mark.parametrize(
    ("table", "ttl_attribute"), [("JobsTable", "expires_at"), ("IdempotencyTable", "expiration")]
)
def test_tables_expire_items_and_keep_point_in_time_recovery(
    template: dict[str, Any], table: str, ttl_attribute: str
) -> None:
    properties = template["Resources"][table]["Properties"]

    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["TimeToLiveSpecification"] == {"AttributeName": ttl_attribute, "Enabled": True}
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_jobs_table_has_the_single_table_keys_tenant_index_schedule_index_and_sweep_index(
        template: dict[str, Any]) -> None:
    from aijobs.dynamo import INDEX_PROJECTIONS

    properties = template["Resources"]["JobsTable"]["Properties"]
    tenants, projected, schedules, sweep = properties["GlobalSecondaryIndexes"]

    assert properties["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    for name, prefix, gsi in (("gsi1lite", "gsi1", tenants), ("gsi2", "gsi2", schedules), ("gsi3", "gsi3", sweep)):
        assert gsi["IndexName"] == name
        assert gsi["KeySchema"] == [
            {"AttributeName": f"{prefix}pk", "KeyType": "HASH"},
            {"AttributeName": f"{prefix}sk", "KeyType": "RANGE"},
        ]
    # the tenant index holds what lists filter on (only a job's status changes write it), as the code knows it
    assert tenants["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["status", "model", "created_at"]}
    assert set(tenants["Projection"]["NonKeyAttributes"]) == INDEX_PROJECTIONS["gsi1lite"]
    assert sweep["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert schedules["Projection"] == {"ProjectionType": "ALL"}
    defined = {a["AttributeName"] for a in properties["AttributeDefinitions"]}
    assert defined == {"pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "gsi3pk", "gsi3sk"}
    # gsi1 (every attribute, on the same keys) only while a stack made before gsi1lite upgrades, in three deploys
    condition, kept, absent = projected["Fn::If"]
    assert (condition, absent) == ("KeepsProjectedTenantIndex", {"Ref": "AWS::NoValue"})
    assert kept["IndexName"] == "gsi1" and kept["Projection"] == {"ProjectionType": "ALL"}
    assert template["Parameters"]["TenantIndexUpgrade"]["Default"] == "done"
    assert template["Globals"]["Function"]["Environment"]["Variables"]["AIJOBS_TENANT_INDEX"] == {
        "Fn::If": ["UsesProjectedTenantIndex", "gsi1", "gsi1lite"]}


def test_every_function_is_told_its_tables_and_queue(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]

    assert variables["AIJOBS_JOBS_TABLE"] == {"Ref": "JobsTable"}
    assert variables["AIJOBS_IDEMPOTENCY_TABLE"] == {"Ref": "IdempotencyTable"}
    assert variables["AIJOBS_JOBS_QUEUE_URL"] == {"Ref": "JobsQueue"}
    assert variables["AIJOBS_JOBS_HIGH_QUEUE_URL"] == {"Ref": "JobsHighQueue"}
    assert variables["AIJOBS_JOBS_LOW_QUEUE_URL"] == {"Ref": "JobsLowQueue"}


def test_the_sweeper_is_told_every_lanes_dead_letter_queue(template: dict[str, Any]) -> None:
    variables = template["Resources"]["SweeperFunction"]["Properties"]["Environment"]["Variables"]
    settings = {f"AIJOBS_{name.upper()}" for name in Settings.model_fields}

    for lane in ("HIGH_", "", "LOW_"):
        assert f"AIJOBS_JOBS_{lane}DEAD_LETTER_QUEUE_URL" in variables.keys() & settings
    assert {"AIJOBS_JOBS_HIGH_QUEUE_URL", "AIJOBS_JOBS_LOW_QUEUE_URL"} <= settings


def test_every_output_has_a_description(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]

    assert {"ApiUrl", "JobsTableName", "JobsQueueUrl", "JobsDeadLetterQueueUrl"} <= outputs.keys()
    lanes = {f"{name}Url" for queue, dead_letters, _ in LANES.values() for name in (queue, dead_letters)}
    assert lanes <= outputs.keys()
    for name, output in outputs.items():
        assert output.get("Description"), name


# --- schedules ---------------------------------------------------------------------------------------


def _statements(policies: list[Any]) -> list[dict[str, Any]]:
    return [s for p in policies if isinstance(p, dict) and "Statement" in p for s in p["Statement"]]


def test_scheduler_role_may_only_be_assumed_by_eventbridge_scheduler_and_only_invoke_scheduler_function(
        template: dict[str, Any]) -> None:
    role = template["Resources"]["SchedulerInvokeRole"]["Properties"]

    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    (policy,) = role["Policies"]
    assert policy["PolicyDocument"]["Statement"] == [{
        "Effect": "Allow", "Action": "lambda:InvokeFunction",
        "Resource": {"Fn::GetAtt": ["SchedulerFunction", "Arn"]}}]
    assert "ManagedPolicyArns" not in role


@pytest.mark.parametrize("function", ["ApiFunction", "StreamFunction"])
def test_api_manages_only_its_groups_schedules_and_passes_only_the_scheduler_role(
        template: dict[str, Any], function: str) -> None:
    statements = _statements(function_policies(template, function))
    scheduler = [s for s in statements if "scheduler" in json.dumps(s["Action"])]
    passes = [s for s in statements if "iam:" in json.dumps(s["Action"])]

    (manage,) = scheduler
    assert set(manage["Action"]) == {"scheduler:CreateSchedule", "scheduler:UpdateSchedule",
                                     "scheduler:DeleteSchedule", "scheduler:GetSchedule"}
    assert manage["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${ScheduleGroup}/*"}
    assert passes == [{"Effect": "Allow", "Action": "iam:PassRole",
                       "Resource": {"Fn::GetAtt": ["SchedulerInvokeRole", "Arn"]},
                       "Condition": {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}}]


def test_api_is_told_the_schedule_group_the_target_function_and_the_role(template: dict[str, Any]) -> None:
    variables = template["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]

    assert variables["AIJOBS_SCHEDULE_GROUP"] == {"Ref": "ScheduleGroup"}
    assert variables["AIJOBS_SCHEDULER_FUNCTION_ARN"] == {"Fn::GetAtt": ["SchedulerFunction", "Arn"]}
    assert variables["AIJOBS_SCHEDULER_ROLE_ARN"] == {"Fn::GetAtt": ["SchedulerInvokeRole", "Arn"]}


def test_scheduler_function_writes_only_the_jobs_table_and_queue(template: dict[str, Any]) -> None:
    policies = template["Resources"]["SchedulerFunction"]["Properties"]["Policies"]
    (dynamodb,) = _statements(policies)

    assert dynamodb["Resource"] == {"Fn::GetAtt": ["JobsTable", "Arn"]}
    assert set(dynamodb["Action"]) == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                                       "dynamodb:BatchWriteItem"}  # UpdateItem: the token rate's reservation
    for queue, _, _ in LANES.values():  # a fire's job goes to its priority's lane
        assert {"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": [queue, "QueueName"]}}} in policies
    assert "scheduler" not in json.dumps(policies) and "iam:" not in json.dumps(policies)


def test_failed_fires_land_in_a_dead_letter_queue_that_raises_an_alarm(template: dict[str, Any]) -> None:
    config = template["Resources"]["SchedulerFunction"]["Properties"]["EventInvokeConfig"]
    alarms = _resources(template, "AWS::CloudWatch::Alarm").values()

    assert config["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS", "Destination": {"Fn::GetAtt": ["ScheduleFiresDeadLetterQueue", "Arn"]}}
    assert 0 <= config["MaximumRetryAttempts"] <= 2
    assert any(a["Properties"]["Dimensions"] == [{"Name": "QueueName", "Value": {
        "Fn::GetAtt": ["ScheduleFiresDeadLetterQueue", "QueueName"]}}] for a in alarms)


def test_large_outputs_bucket_is_private_and_outlives_the_longest_retention(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["ResultsBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] * 24 > template["Parameters"]["ResultRetentionHours"]["MaxValue"]
    assert template["Globals"]["Function"]["Environment"]["Variables"]["AIJOBS_RESULTS_BUCKET"] == {
        "Ref": "ResultsBucket"}


def test_the_vector_index_is_cosine_float32_of_the_dimension_parameter_with_text_not_filterable(
        template: dict[str, Any]) -> None:
    index = template["Resources"]["VectorIndex"]["Properties"]
    dimension = template["Parameters"]["VectorDimension"]

    assert template["Resources"]["VectorIndex"]["Type"] == "AWS::S3Vectors::Index"
    assert index["VectorBucketArn"] == {"Fn::GetAtt": ["VectorBucket", "VectorBucketArn"]}
    assert (index["DataType"], index["DistanceMetric"]) == ("float32", "cosine")  # VectorIndex's score needs cosine
    assert index["Dimension"] == {"Ref": "VectorDimension"}
    assert dimension["Default"] == Settings.model_fields["vector_dimension"].default == 1536
    assert (dimension["MinValue"], dimension["MaxValue"]) == (1, 4096)
    assert index["MetadataConfiguration"] == {"NonFilterableMetadataKeys": ["text"]}
    assert "IndexName" not in index  # CloudFormation names it, so a new dimension can replace it


@pytest.mark.parametrize("function", ["ApiFunction", "StreamFunction", "WorkerFunction"])
def test_the_api_and_the_worker_are_told_the_vector_index_and_its_dimension(template: dict[str, Any],
                                                                           function: str) -> None:
    variables = template["Resources"][function]["Properties"]["Environment"]["Variables"]

    assert variables["AIJOBS_VECTOR_INDEX_ARN"] == {"Fn::GetAtt": ["VectorIndex", "IndexArn"]}
    assert variables["AIJOBS_VECTOR_DIMENSION"] == {"Ref": "VectorDimension"}
