"""make run's moto in a process of its own: it serves the stack's services, and it ends with the stack."""

from __future__ import annotations

import boto3

from aijobs.local.moto_process import start_moto_process


def test_the_local_stack_s_moto_process_serves_dynamodb_and_sqs_and_ends_when_stopped() -> None:
    server = start_moto_process()
    host, port = server.get_host_and_port()
    session = boto3.session.Session(region_name="eu-west-1", aws_access_key_id="local", aws_secret_access_key="local")
    try:
        dynamodb = session.client("dynamodb", endpoint_url=f"http://{host}:{port}")
        dynamodb.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                              KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        dynamodb.put_item(TableName="t", Item={"pk": {"S": "a"}, "n": {"N": "1"}})
        for _ in range(3):  # its lookups, made once, answer every request alike
            assert dynamodb.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"]["n"] == {"N": "1"}
        sqs = session.client("sqs", endpoint_url=f"http://{host}:{port}")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="hello")
        assert [m["Body"] for m in sqs.receive_message(QueueUrl=url)["Messages"]] == ["hello"]
    finally:
        server.stop()
    assert server._process.poll() is not None  # gone with the stack, not left behind
