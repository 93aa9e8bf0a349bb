"""Priority lanes on the stack of `make run`: a high job overtakes a backlog of low ones.

The local stack polls each lane's queue on its own, as each lane's event source mapping does in AWS, so a high job
is received as soon as it is sent, whatever waits in the low lane. Order and counts are checked, never times.
"""

from __future__ import annotations

import uuid

import httpx

from tests.e2e.conftest import Stack

LOW_JOBS = 60


def _completed(client: httpx.Client, ids: list[str]) -> int:
    statuses = [item["status"] for item in client.post("/v1/jobs/status", json={"ids": ids}).json()["data"]]
    return statuses.count("completed")


def test_a_high_job_finishes_before_most_of_a_backlog_of_low_jobs_sent_before_it(stack: Stack) -> None:
    run = uuid.uuid4().hex[:8]
    # Each low job keeps the model busy a while, so the backlog takes many rounds of the low lane to drain.
    low = [{"input": f"backlog {run} {i} [[delay_ms=400]]", "priority": "low", "max_output_tokens": 16}
           for i in range(LOW_JOBS)]
    with stack.client() as client:
        answer = client.post("/v1/jobs/batch", json={"jobs": low})
        assert answer.status_code == 202, answer.text
        batch_id, low_ids = answer.json()["batch_id"], [item["id"] for item in answer.json()["data"]]
        assert len(low_ids) == LOW_JOBS

        high = client.post("/v1/jobs", json={"input": f"urgent {run}", "priority": "high", "max_output_tokens": 16},
                           headers={"Prefer": "wait=20"})
        low_done_when_high_was = _completed(client, low_ids)

        assert high.status_code == 200 and high.json()["status"] == "completed", high.text
        assert high.json()["priority"] == "high"
        assert low_done_when_high_was < LOW_JOBS // 2
        # The rest of the backlog is cancelled: the shared stack is left idle for the tests after this one.
        while (cancel := client.post(f"/v1/batches/{batch_id}/cancel").json())["status"] == "cancelling":
            pass
        assert cancel["status"] == "cancelled"
