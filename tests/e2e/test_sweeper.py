"""The sweeper in the local stack: a job whose worker died is found through the sweep index and runs again."""

from __future__ import annotations

import time
import uuid

import httpx

from aijobs.dynamo import sweep_keys
from tests.e2e.conftest import Stack
from tests.helpers import eventually


def test_a_job_whose_worker_died_is_run_again_by_the_stacks_own_sweeper(stack: Stack) -> None:
    prompt = f"run twice {uuid.uuid4().hex[:8]}"
    with stack.client() as client:
        job_id = client.post("/v1/jobs", json={"input": prompt}).json()["id"]
        eventually(lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "completed")
        # As a worker that claimed it and died would leave it: in_progress, its lease over, its message gone.
        table = stack.aws("dynamodb")
        (name,) = [t for t in table.list_tables()["TableNames"] if t.endswith("JobsTable")]
        past = int(time.time()) - 1
        keys = sweep_keys(job_id, past)
        table.update_item(
            TableName=name, Key={"pk": {"S": f"JOB#{job_id}"}, "sk": {"S": "JOB"}},
            UpdateExpression="SET #s = :running, lease_until = :past, gsi3pk = :pk, gsi3sk = :sk REMOVE completed_at",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":running": {"S": "in_progress"}, ":past": {"N": str(past)},
                                       ":pk": {"S": keys["gsi3pk"]}, ":sk": {"S": keys["gsi3sk"]}})

        job = eventually(lambda: (j := client.get(f"/v1/jobs/{job_id}").json())["status"] == "completed" and j)
    assert job["attempt"] == 2  # taken over once its lease was found over
    assert httpx.get(f"{stack.model_url}/_stats", params={"prompt": prompt}).json()["prompt"] == 2
