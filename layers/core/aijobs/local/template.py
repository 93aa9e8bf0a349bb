"""template.yaml as the local stack's source of truth: the resources it declares are the ones created here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[4]
TEMPLATE = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """A YAML loader that reads CloudFormation short-form tags (!Ref, !GetAtt, !Sub, ...)."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _tag)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    with path.open() as f:
        return dict(yaml.load(f, Loader=_CfnLoader))


@dataclass
class LocalResources:
    """Physical names of the template's resources as created locally, by logical id."""

    refs: dict[str, str] = field(default_factory=dict)  # what !Ref answers: table name, queue URL
    arns: dict[str, str] = field(default_factory=dict)


def provision(template: dict[str, Any], *, session: Any, prefix: str) -> LocalResources:
    """Create the template's DynamoDB tables, S3 buckets, SQS queues (with their redrives) and S3 Vectors indexes
    in the emulator."""
    dynamodb, sqs = session.client("dynamodb"), session.client("sqs")
    resources = template.get("Resources", {})
    created = LocalResources()
    for logical_id, resource in resources.items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::DynamoDB::Table":
            name = f"{prefix}-{logical_id}"
            table: dict[str, Any] = {
                "TableName": name, "KeySchema": props["KeySchema"],
                "AttributeDefinitions": props["AttributeDefinitions"], "BillingMode": "PAY_PER_REQUEST"}
            if props.get("GlobalSecondaryIndexes"):
                table["GlobalSecondaryIndexes"] = [
                    {k: v for k, v in gsi.items() if k in ("IndexName", "KeySchema", "Projection")}
                    for gsi in map(lambda gsi: _branch(gsi, template, created), props["GlobalSecondaryIndexes"])
                    if gsi is not None]
            dynamodb.create_table(**table)
            ttl = props.get("TimeToLiveSpecification")
            if ttl and ttl.get("Enabled"):  # moto ignores the spec at creation
                dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification={
                    "AttributeName": ttl["AttributeName"], "Enabled": True})
            created.refs[logical_id] = name
            created.arns[logical_id] = f"arn:aws:dynamodb:us-east-1:123456789012:table/{name}"
        elif resource["Type"] == "AWS::S3::Bucket":
            name = f"{prefix}-{logical_id}".lower()
            session.client("s3").create_bucket(Bucket=name)
            created.refs[logical_id] = name
            created.arns[logical_id] = f"arn:aws:s3:::{name}"
        elif resource["Type"] == "AWS::SQS::Queue":
            attributes = {k: str(props[k]) for k in ("VisibilityTimeout", "MessageRetentionPeriod",
                                                     "DelaySeconds", "ReceiveMessageWaitTimeSeconds") if k in props}
            url = sqs.create_queue(QueueName=f"{prefix}-{logical_id}", Attributes=attributes)["QueueUrl"]
            created.refs[logical_id] = url
            created.arns[logical_id] = sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        elif resource["Type"] == "AWS::Scheduler::ScheduleGroup":
            name = f"{prefix}-{logical_id}"
            created.arns[logical_id] = session.client("scheduler").create_schedule_group(Name=name)["ScheduleGroupArn"]
            created.refs[logical_id] = name
        elif resource["Type"] == "AWS::S3Vectors::VectorBucket":  # !Ref answers its ARN, as in CloudFormation
            name = f"{prefix}-{logical_id}".lower()
            s3vectors = session.client("s3vectors")
            s3vectors.create_vector_bucket(vectorBucketName=name)
            bucket = s3vectors.get_vector_bucket(vectorBucketName=name)["vectorBucket"]
            created.refs[logical_id] = created.arns[logical_id] = bucket["vectorBucketArn"]
        elif resource["Type"] == "AWS::Serverless::Function":  # never created: the local stack calls its handler
            created.arns[logical_id] = f"arn:aws:lambda:us-east-1:123456789012:function:{prefix}-{logical_id}"
        elif resource["Type"] == "AWS::IAM::Role":  # named only, so that what passes a role's ARN gets one
            created.arns[logical_id] = f"arn:aws:iam::123456789012:role/{prefix}-{logical_id}"
    for logical_id, resource in resources.items():  # vector indexes once their buckets exist
        if resource["Type"] == "AWS::S3Vectors::Index":
            created.refs[logical_id] = created.arns[logical_id] = _create_vector_index(
                session.client("s3vectors"), f"{prefix}-{logical_id}".lower(), template, created,
                resource["Properties"])
    for logical_id, resource in resources.items():  # redrive once every queue exists
        redrive = resource.get("Properties", {}).get("RedrivePolicy")
        if resource["Type"] == "AWS::SQS::Queue" and redrive:
            target = resolve(redrive["deadLetterTargetArn"], template, created)
            sqs.set_queue_attributes(QueueUrl=created.refs[logical_id], Attributes={"RedrivePolicy": (
                f'{{"deadLetterTargetArn":"{target}","maxReceiveCount":"{redrive["maxReceiveCount"]}"}}')})
    for definition in static_schedules(template, created, prefix=prefix):
        session.client("scheduler").create_schedule(**definition)
    return created


def _create_vector_index(s3vectors: Any, name: str, template: dict[str, Any], created: LocalResources,
                         props: dict[str, Any]) -> str:
    """An S3 Vectors index as the template declares it (its bucket by ARN); returns its ARN."""
    bucket = resolve(props["VectorBucketArn"], template, created).rsplit("/", 1)[1]
    index: dict[str, Any] = {"vectorBucketName": bucket, "indexName": name, "dataType": props["DataType"],
                             "dimension": int(resolve(props["Dimension"], template, created)),
                             "distanceMetric": props["DistanceMetric"]}
    non_filterable = props.get("MetadataConfiguration", {}).get("NonFilterableMetadataKeys")
    if non_filterable:
        index["metadataConfiguration"] = {"nonFilterableMetadataKeys": non_filterable}
    s3vectors.create_index(**index)
    return str(s3vectors.get_index(vectorBucketName=bucket, indexName=name)["index"]["indexArn"])


def reset(template: dict[str, Any], created: LocalResources, *, session: Any, prefix: str) -> None:
    """Put what ``provision`` created back as it was just after provisioning, in a few calls.

    Every table, queue (dead-letter queues included), bucket and vector index is emptied; the schedules of every
    group are deleted, then the template's static schedules created again; schedule groups it did not create are
    deleted.
    Queues are purged: against moto that needs ``MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR=false`` (moto,
    like SQS, refuses a second purge of a queue within 60 s by default). ``session`` is anything with
    ``client(service_name)``: a caller that resets often can hand it clients it keeps.
    """
    dynamodb, sqs, s3 = session.client("dynamodb"), session.client("sqs"), session.client("s3")
    for logical_id, resource in template.get("Resources", {}).items():
        if resource["Type"] == "AWS::DynamoDB::Table":
            keys = [k["AttributeName"] for k in resource["Properties"]["KeySchema"]]
            _empty_table(dynamodb, created.refs[logical_id], keys)
        elif resource["Type"] == "AWS::SQS::Queue":
            sqs.purge_queue(QueueUrl=created.refs[logical_id])
        elif resource["Type"] == "AWS::S3::Bucket":
            _empty_bucket(s3, created.refs[logical_id])
        elif resource["Type"] == "AWS::S3Vectors::Index":
            _empty_vector_index(session.client("s3vectors"), created.arns[logical_id])
    scheduler = session.client("scheduler")
    for page in scheduler.get_paginator("list_schedules").paginate():
        for schedule in page["Schedules"]:
            scheduler.delete_schedule(Name=schedule["Name"], GroupName=schedule["GroupName"])
    ours = {created.refs[logical_id] for logical_id, resource in template.get("Resources", {}).items()
            if resource["Type"] == "AWS::Scheduler::ScheduleGroup"}
    for page in scheduler.get_paginator("list_schedule_groups").paginate():
        for group in page["ScheduleGroups"]:
            if group["Name"] not in ours and group["Name"] != "default":
                scheduler.delete_schedule_group(Name=group["Name"])
    for definition in static_schedules(template, created, prefix=prefix):
        scheduler.create_schedule(**definition)


def _empty_table(dynamodb: Any, table: str, keys: list[str]) -> None:
    names = {f"#k{i}": key for i, key in enumerate(keys)}
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True,
                                                         ProjectionExpression=", ".join(names),
                                                         ExpressionAttributeNames=names):
        items = page["Items"]
        for start in range(0, len(items), 25):
            requests = [{"DeleteRequest": {"Key": item}} for item in items[start:start + 25]]
            while requests:
                answer = dynamodb.batch_write_item(RequestItems={table: requests})
                requests = answer.get("UnprocessedItems", {}).get(table, [])


def _empty_bucket(s3: Any, bucket: str) -> None:
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        objects = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                   for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        if objects:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})


def _empty_vector_index(s3vectors: Any, index_arn: str) -> None:
    for page in s3vectors.get_paginator("list_vectors").paginate(indexArn=index_arn):
        keys = [vector["key"] for vector in page["vectors"]]
        for start in range(0, len(keys), 500):
            s3vectors.delete_vectors(indexArn=index_arn, keys=keys[start:start + 500])


def static_schedules(template: dict[str, Any], created: LocalResources, *, prefix: str) -> list[dict[str, Any]]:
    """The EventBridge schedules that the functions' ScheduleV2 events declare, as SAM would create them."""
    schedules = []
    for function_id, resource in template.get("Resources", {}).items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event_id, event in (resource.get("Properties", {}).get("Events") or {}).items():
            if event.get("Type") != "ScheduleV2":
                continue
            props = {name: resolve(value, template, created) for name, value in event.get("Properties", {}).items()}
            target = {"Arn": created.arns[function_id],
                      "RoleArn": props.get("RoleArn") or f"arn:aws:iam::123456789012:role/{prefix}-{event_id}Role"}
            if props.get("Input") is not None:
                target["Input"] = props["Input"]
            definition = {"Name": props.get("Name") or event_id, "ScheduleExpression": props["ScheduleExpression"],
                          "FlexibleTimeWindow": props.get("FlexibleTimeWindow") or {"Mode": "OFF"}, "Target": target}
            for name in ("GroupName", "ScheduleExpressionTimezone", "State", "StartDate", "EndDate", "Description"):
                if props.get(name) is not None:
                    definition[name] = props[name]
            schedules.append(definition)
    return schedules


def resolve(value: Any, template: dict[str, Any], created: LocalResources) -> Any:
    """Resolve !Ref, !GetAtt X.Arn, !Sub and !If for parameters (at their defaults) and created resources."""
    if not isinstance(value, dict):
        return value
    if "Ref" in value:
        name = value["Ref"]
        if name in created.refs:
            return created.refs[name]
        return template.get("Parameters", {}).get(name, {}).get("Default")
    if "Fn::GetAtt" in value:
        return created.arns.get(value["Fn::GetAtt"][0])
    if "Fn::If" in value:
        condition, when_true, when_false = value["Fn::If"]
        chosen = when_true if _condition(template, condition, created) else when_false
        return resolve(chosen, template, created)
    if "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        text = value["Fn::Sub"]
        for name in template.get("Parameters", {}) | {k: None for k in created.refs}:
            text = text.replace("${" + name + "}", str(resolve({"Ref": name}, template, created)))
        return text
    return None


def _branch(value: Any, template: dict[str, Any], created: LocalResources) -> Any:
    """An !If's branch as its condition chooses (None: AWS::NoValue); anything else as it is."""
    if isinstance(value, dict) and "Fn::If" in value:
        condition, when_true, when_false = value["Fn::If"]
        value = _branch(when_true if _condition(template, condition, created) else when_false, template, created)
    return None if value == {"Ref": "AWS::NoValue"} else value


def _condition(template: dict[str, Any], condition: Any, created: LocalResources) -> bool:
    if isinstance(condition, str):
        return _condition(template, template.get("Conditions", {}).get(condition), created)
    if not isinstance(condition, dict):
        return bool(condition)
    if "Fn::Equals" in condition:
        a, b = (resolve(v, template, created) for v in condition["Fn::Equals"])
        return bool(a == b)
    if "Fn::Not" in condition:
        return not _condition(template, condition["Fn::Not"][0], created)
    if "Condition" in condition:
        return _condition(template, condition["Condition"], created)
    return False


def function_environment(template: dict[str, Any], created: LocalResources, function: str) -> dict[str, str]:
    """A function's environment variables as the template declares them (Globals, then its own)."""
    variables = {
        **template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}),
        **template["Resources"][function].get("Properties", {}).get("Environment", {}).get("Variables", {}),
    }
    resolved = {name: resolve(value, template, created) for name, value in variables.items()}
    return {name: str(value) for name, value in resolved.items() if value not in (None, "")}


@dataclass(frozen=True)
class QueueSource:
    """An SQS event source of a function, as the template declares it."""

    function: str  # logical id
    queue: str  # the queue's logical id
    code_dir: str  # the folder under functions/
    handler: str  # the handler's name in app.py
    batch_size: int
    max_concurrency: int | None = None  # ScalingConfig.MaximumConcurrency: the most batches Lambda runs at once


def sqs_sources(template: dict[str, Any]) -> list[QueueSource]:
    """Every function's SQS events: what the local stack must poll, and which handler each feeds."""
    sources = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        for event in props.get("Events", {}).values():
            if event["Type"] == "SQS":
                most = event["Properties"].get("ScalingConfig", {}).get("MaximumConcurrency")
                if isinstance(most, dict):  # a Ref to a parameter: its default
                    most = template["Parameters"][most["Ref"]]["Default"]
                sources.append(QueueSource(
                    function=logical_id, queue=event["Properties"]["Queue"]["Fn::GetAtt"][0],
                    code_dir=Path(props["CodeUri"]).name, handler=props["Handler"].split(".", 1)[1],
                    batch_size=int(event["Properties"].get("BatchSize", 10)),
                    max_concurrency=int(most) if most is not None else None))
    return sources


@dataclass(frozen=True)
class RateRule:
    """A function's EventBridge rule (a SAM ``Schedule`` event with ``rate(...)``): what the local stack runs itself."""

    function: str  # logical id
    code_dir: str
    handler: str
    interval_s: int


def rate_rules(template: dict[str, Any]) -> list[RateRule]:
    """Every function's ``Schedule`` event with a rate expression (EventBridge rules, which moto never fires)."""
    from aijobs.schedules.expressions import RateExpression, parse_expression

    rules = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        for event in props.get("Events", {}).values():
            if event["Type"] == "Schedule":
                expression = parse_expression(event["Properties"]["Schedule"])
                assert isinstance(expression, RateExpression), "the local stack runs rate() rules only"
                rules.append(RateRule(function=logical_id, code_dir=Path(props["CodeUri"]).name,
                                      handler=props["Handler"].split(".", 1)[1],
                                      interval_s=int(expression.period.total_seconds())))
    return rules
