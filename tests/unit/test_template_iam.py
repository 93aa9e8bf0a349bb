"""template.yaml's DynamoDB permissions: least privilege per function, on exact table and index ARNs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aijobs.local.template import load_template

ROOT = Path(__file__).resolve().parents[2]

# StreamFunction serves every API route (the streaming front): it must hold exactly ApiFunction's grants.
FUNCTIONS = ["ApiFunction", "StreamFunction", "WorkerFunction", "WebhookFunction", "SchedulerFunction",
             "SweeperFunction"]
JOBS_TABLE = {"Fn::GetAtt": ["JobsTable", "Arn"]}
IDEMPOTENCY_TABLE = {"Fn::GetAtt": ["IdempotencyTable", "Arn"]}


def _index(name: str) -> dict[str, str]:
    return {"Fn::Sub": f"${{JobsTable.Arn}}/index/{name}"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def function_policies(template: dict[str, Any], function: str) -> list[Any]:
    """A function's ``Policies`` as deployed: a managed policy of the template's by its statements (``{"Statement":
    [...]}``), and both branches of a conditional one (either may be deployed). A ``Ref`` to anything else fails."""
    resources = template["Resources"]
    policies: list[Any] = []
    for policy in resources[function]["Properties"].get("Policies", []):
        if isinstance(policy, dict) and "Fn::If" in policy:
            policies += [branch for branch in policy["Fn::If"][1:] if branch != {"Ref": "AWS::NoValue"}]
        elif isinstance(policy, dict) and "Ref" in policy:
            managed = resources[policy["Ref"]]
            assert managed["Type"] == "AWS::IAM::ManagedPolicy", policy
            policies.append({"Statement": managed["Properties"]["PolicyDocument"]["Statement"]})
        else:
            policies.append(policy)
    return policies


def _statements(template: dict[str, Any], function: str) -> list[dict[str, Any]]:
    return [s for p in function_policies(template, function) if isinstance(p, dict) and "Statement" in p
            for s in _as_list(p["Statement"])]


def _dynamodb_statements(template: dict[str, Any], function: str) -> list[dict[str, Any]]:
    return [s for s in _statements(template, function) if "dynamodb" in json.dumps(s["Action"]).lower()]


def _grants(template: dict[str, Any], function: str) -> dict[str, set[str]]:
    """DynamoDB actions by resource (as JSON), across all of the function's statements."""
    grants: dict[str, set[str]] = {}
    for statement in _dynamodb_statements(template, function):
        for resource in _as_list(statement["Resource"]):
            grants.setdefault(json.dumps(resource, sort_keys=True), set()).update(_as_list(statement["Action"]))
    return grants


def _key(resource: dict[str, Any]) -> str:
    return json.dumps(resource, sort_keys=True)


def test_every_function_is_checked_here(template: dict[str, Any]) -> None:
    functions = {name for name, res in template["Resources"].items() if res["Type"] == "AWS::Serverless::Function"}

    assert functions == set(FUNCTIONS)  # a new function needs its row in the grants below


@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_function_uses_a_dynamodb_policy_template_or_a_wildcard(template: dict[str, Any], function: str) -> None:
    for policy in function_policies(template, function):
        text = json.dumps(policy)
        # SAM's DynamoDBCrudPolicy (and its Read/Write siblings) grant Scan, DeleteItem and every index.
        assert not (isinstance(policy, dict) and any(key.startswith("DynamoDB") for key in policy)), text
        assert not (isinstance(policy, str) and "dynamodb" in policy.lower()), text  # a managed policy
    for statement in _statements(template, function):
        assert statement["Effect"] == "Allow" and "NotAction" not in statement and "NotResource" not in statement
        assert all("*" not in action for action in _as_list(statement["Action"])), statement
    for statement in _dynamodb_statements(template, function):
        assert "*" not in _as_list(statement["Resource"]), statement


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_dynamodb_statement_names_a_declared_table_or_one_of_its_indexes(
        template: dict[str, Any], function: str) -> None:
    resources = template["Resources"]
    allowed = [JOBS_TABLE, IDEMPOTENCY_TABLE] + [
        _index(gsi.get("Fn::If", [None, gsi])[1]["IndexName"])  # (one is there while a stack upgrades)
        for gsi in resources["JobsTable"]["Properties"]["GlobalSecondaryIndexes"]]

    for statement in _dynamodb_statements(template, function):
        assert all(r in allowed for r in _as_list(statement["Resource"])), statement
        assert all(a.startswith("dynamodb:") for a in _as_list(statement["Action"])), statement


@pytest.mark.parametrize("function", FUNCTIONS)
def test_an_index_arn_only_ever_allows_query(template: dict[str, Any], function: str) -> None:
    for resource, actions in _grants(template, function).items():
        if "/index/" in resource:
            assert actions == {"dynamodb:Query"}, (function, resource)


@pytest.mark.parametrize(("function", "indexes"), [
    # GET /v1/jobs (gsi1lite, gsi2 with schedule_id), GET /v1/schedules (gsi1lite); gsi1 while a stack upgrades
    ("ApiFunction", {"gsi1lite", "gsi1", "gsi2"}),
    ("StreamFunction", {"gsi1lite", "gsi1", "gsi2"}),  # the same routes
    ("WorkerFunction", set()),
    ("WebhookFunction", set()),  # its Queries (signing secrets) are by primary key
    ("SchedulerFunction", set()),
    ("SweeperFunction", {"gsi3"}),  # the due entries of the sweep index
])
def test_only_functions_that_query_an_index_get_its_arn(
        template: dict[str, Any], function: str, indexes: set[str]) -> None:
    granted = {json.loads(r)["Fn::Sub"].rsplit("/", 1)[1] for r in _grants(template, function) if "/index/" in r}

    assert granted == indexes


@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_function_may_scan_or_bypass_its_grants_with_partiql(template: dict[str, Any], function: str) -> None:
    actions = set().union(*_grants(template, function).values())

    assert not actions & {"dynamodb:Scan", "dynamodb:ExecuteStatement", "dynamodb:BatchExecuteStatement",
                          "dynamodb:PartiQLSelect", "dynamodb:PartiQLInsert", "dynamodb:PartiQLUpdate",
                          "dynamodb:PartiQLDelete"}


# What each function's code reaches, by table. A reviewer reads a new grant here, next to its reason.
GRANTS: dict[str, dict[str, set[str]]] = {
    "ApiFunction": {
        _key(JOBS_TABLE): {
            "dynamodb:GetItem",  # the API key and its tenant, jobs, schedules, limits, webhook endpoints (one item)
            "dynamodb:PutItem",  # jobs, schedules, signing secrets; admin: keys, limits, audit entries
            "dynamodb:UpdateItem",  # secrets rotated out, the webhook marks on redeliver, rate and usage counters
            "dynamodb:DeleteItem",  # schedules; admin: a revoked key, a deleted tenant's items
            "dynamodb:BatchGetItem",  # POST /v1/jobs/status; a list's page of gsi1lite entries (their items)
            "dynamodb:BatchWriteItem",  # POST /v1/jobs/batch, jobs removed when their enqueue fails
            "dynamodb:Query",  # signing secrets, the delivery ledger, usage days; admin: a tenant's items, the audit
        },
        _key(_index("gsi1lite")): {"dynamodb:Query"},  # a tenant's jobs, schedules, and (admin) keys
        _key(_index("gsi1")): {"dynamodb:Query"},  # the same, while a stack upgrades (TenantIndexUpgrade)
        _key(_index("gsi2")): {"dynamodb:Query"},
        # Powertools idempotency: get, put (conditional), update (completion), delete (on failure)
        _key(IDEMPOTENCY_TABLE): {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                                  "dynamodb:DeleteItem"},
    },
    # jobs, slots, wait items by key (UpdateItem makes items); parked jobs: the oldest of one tenant's partition
    # (Query, base table), and each one's wait item deleted by the worker that wins its release (DeleteItem); the
    # tenant's webhook endpoints are one item, read with GetItem; the running jobs' status, read together by key
    # (BatchGetItem: the items GetItem reaches, no more); streamed output pieces, written together in output logs'
    # partitions (BatchWriteItem)
    "WorkerFunction": {_key(JOBS_TABLE): {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem",
                                          "dynamodb:Query", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}},
    "WebhookFunction": {_key(JOBS_TABLE): {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                                           "dynamodb:Query"}},
    # the schedule and the tenant's limits; the job; its tokens reserved in the tenant's minute; the job taken back
    "SchedulerFunction": {_key(JOBS_TABLE): {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                                             "dynamodb:BatchWriteItem"}},
    # the job read before a repair; its sweep entry moved or removed, a dead letter's job failed, webhook marks
    "SweeperFunction": {_key(JOBS_TABLE): {"dynamodb:GetItem", "dynamodb:UpdateItem"},
                        _key(_index("gsi3")): {"dynamodb:Query"}},
}
GRANTS["StreamFunction"] = GRANTS["ApiFunction"]  # the streaming front serves the same routes, no more


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_gets_exactly_the_dynamodb_actions_its_code_uses(template: dict[str, Any], function: str) -> None:
    assert _grants(template, function) == GRANTS[function]


def test_worker_moves_jobs_by_key_and_cannot_put_delete_or_read_them_in_bulk(template: dict[str, Any]) -> None:
    actions = set().union(*_grants(template, "WorkerFunction").values())

    assert "dynamodb:UpdateItem" in actions  # claim and every transition are conditional updates
    # Parking (concurrency.py) added Query and DeleteItem, deliberately: releasing a tenant's oldest parked job reads
    # the tenant's WAIT# range (on the base table: no index is granted) and deletes the one wait item it wins. The
    # wait item itself is made with UpdateItem, so PutItem stays out, and nothing may Scan. The running jobs' status
    # checks read their items by key together (BatchGetItem): what GetItem reads, no more. Streamed output pieces are
    # written together (BatchWriteItem, which can put and delete), in output logs' partitions only (OUT#<job id>).
    assert {"dynamodb:Query", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"} <= actions
    assert not actions & {"dynamodb:Scan", "dynamodb:PutItem"}
    assert not any("/index/" in resource for resource in _grants(template, "WorkerFunction"))
    # ...and only in tenants' partitions (TENANT#<t>) and output logs': the worker can neither list, put nor delete
    # anyone's jobs.
    confined = {"dynamodb:Query": "TENANT#*", "dynamodb:DeleteItem": "TENANT#*", "dynamodb:BatchWriteItem": "OUT#*"}
    for statement in _dynamodb_statements(template, "WorkerFunction"):
        if granted := set(_as_list(statement["Action"])) & set(confined):
            assert len({confined[action] for action in granted}) == 1, statement
            partitions = [confined[action] for action in granted][:1]
            assert statement["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": partitions}}


@pytest.mark.parametrize("function", ["WorkerFunction", "WebhookFunction", "SchedulerFunction", "SweeperFunction"])
def test_only_the_api_touches_the_idempotency_table(template: dict[str, Any], function: str) -> None:
    assert "IdempotencyTable" not in json.dumps(function_policies(template, function))


def test_metrics_go_out_through_the_logs_so_no_function_may_put_metric_data(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]

    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "aijobs"
    for function in FUNCTIONS:
        assert "cloudwatch:" not in json.dumps(function_policies(template, function)).lower(), function
        assert "CloudWatchPutMetricPolicy" not in json.dumps(function_policies(template, function)), function


def test_the_worker_may_send_a_released_jobs_message_to_the_jobs_queues_only(template: dict[str, Any]) -> None:
    policies = function_policies(template, "WorkerFunction")

    # a parked job (over its tenant's concurrency limit) is released by sending its message again, to its lane
    sends = [p for p in policies if "SQSSendMessagePolicy" in p]
    assert {json.dumps(p) for p in sends} == {
        json.dumps({"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": [queue, "QueueName"]}}})
        for queue in ("JobsHighQueue", "JobsQueue", "JobsLowQueue", "DeliveriesQueue")}


# --- S3 Vectors: the one index of documents' chunks -----------------------------------------------------------------

VECTOR_INDEX = {"Fn::GetAtt": ["VectorIndex", "IndexArn"]}
# What each function's code does to the index, by action. QueryVectors with a metadata filter or returned metadata
# (every search filters on its tenant) also needs GetVectors; a document's keys are deleted by key, never listed.
VECTOR_GRANTS: dict[str, set[str]] = {
    "ApiFunction": {"s3vectors:QueryVectors", "s3vectors:GetVectors", "s3vectors:DeleteVectors"},
    "StreamFunction": {"s3vectors:QueryVectors", "s3vectors:GetVectors", "s3vectors:DeleteVectors"},
    "WorkerFunction": {"s3vectors:PutVectors", "s3vectors:DeleteVectors"},  # chunks embedded, a shorter version's
    "WebhookFunction": set(),
    "SchedulerFunction": set(),
    "SweeperFunction": set(),
}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_gets_exactly_the_s3_vectors_actions_its_code_uses_on_the_index_only(
        template: dict[str, Any], function: str) -> None:
    statements = [s for s in _statements(template, function) if "s3vectors" in json.dumps(s["Action"])]
    actions = {action for s in statements for action in _as_list(s["Action"])}

    assert actions == VECTOR_GRANTS[function]
    assert all(_as_list(s["Resource"]) == [VECTOR_INDEX] for s in statements)  # never the bucket, never "*"
    assert "VectorBucket" not in json.dumps(function_policies(template, function))
