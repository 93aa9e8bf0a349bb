"""DELETE /v1/jobs/{id} cancels; POST /v1/jobs/{id}/retry runs a failed or cancelled job again."""

from __future__ import annotations

import json
import threading
from typing import Any

from aijobs.services import Services
from tests.faults import sqs_down
from tests.helpers import eventually
from tests.integration.conftest import KEY_B, TENANT_A, api_client, run_worker


def _stats(fake_model: Any, prompt: str) -> dict[str, int]:
    import httpx

    stats: dict[str, int] = httpx.get(f"{fake_model.url}/_stats", params={"prompt": prompt}).json()
    return stats


def _model_calls(fake_model: Any, prompt: str) -> int:
    return _stats(fake_model, prompt)["prompt"]


def _deliveries(services: Services) -> int:
    attributes = services.sqs.get_queue_attributes(QueueUrl=services.settings.deliveries_queue_url, AttributeNames=[
        "ApproximateNumberOfMessages"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_a_queued_job_is_cancelled_at_once_and_never_reaches_the_model(
        api: Any, services: Services, worker_handler: Any, fake_model: Any) -> None:
    prompt = "cancel me while queued"
    job_id = api.post("/v1/jobs", json={"input": prompt, "callback_url": "https://hooks.example.com/a"}).json()["id"]
    cancelled = api.delete(f"/v1/jobs/{job_id}")
    again = api.delete(f"/v1/jobs/{job_id}")
    run_worker(services, worker_handler)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["completed_at"] is not None
    assert again.status_code == 200 and again.json() == cancelled.json()
    assert api.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
    assert _model_calls(fake_model, prompt) == 0
    assert _deliveries(services) == 1  # its job.cancelled webhook is queued, once


def test_a_finished_job_cannot_be_cancelled(api: Any, services: Services, worker_handler: Any,
                                            fake_model: Any) -> None:
    job_id = api.post("/v1/jobs", json={"input": "finish first"}).json()["id"]
    run_worker(services, worker_handler)
    assert _model_calls(fake_model, "finish first") == 1  # (so a count of 0 means what it says)
    answer = api.delete(f"/v1/jobs/{job_id}")
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "job_finished"
    assert api.get(f"/v1/jobs/{job_id}").json()["status"] == "completed"


def test_a_cancel_after_the_model_answered_keeps_what_the_model_made(
        api: Any, services: Services, worker_handler: Any) -> None:
    job_id = api.post("/v1/jobs", json={"input": "answered, then cancelled"}).json()["id"]
    real_complete = services.store.complete_job
    cancelled: list[Any] = []

    def cancel_first(job: Any, **result: Any) -> Any:  # the cancel lands between the answer and its write
        cancelled.append(api.delete(f"/v1/jobs/{job_id}"))
        return real_complete(job, **result)

    services.store.complete_job = cancel_first  # type: ignore[method-assign]
    run_worker(services, worker_handler)
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert cancelled[0].status_code == 200 and cancelled[0].json()["usage"] is None
    assert job["status"] == "cancelled" and job["completed_at"] == cancelled[0].json()["completed_at"]
    assert job["usage"]["output_tokens"] > 0 and job["cost_usd"] is not None and job["output"]["text"]


def test_a_cancel_that_loses_the_race_with_the_worker_leaves_one_outcome(
        api: Any, services: Services, worker_handler: Any) -> None:
    job_id = api.post("/v1/jobs", json={"input": "race"}).json()["id"]
    real_cancel = services.store.cancel_job

    def worker_finishes_first(job: Any) -> Any:  # the job ends between the cancel's read and its write
        run_worker(services, worker_handler)
        return real_cancel(job)

    services.store.cancel_job = worker_finishes_first  # type: ignore[method-assign]
    answer = api.delete(f"/v1/jobs/{job_id}")
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "job_finished"
    job = services.store.get_job(job_id)
    assert job is not None and job.status.value == "completed" and job.error is None


def test_retry_runs_a_failed_job_again_once_and_links_the_two(
        api: Any, services: Services, worker_handler: Any) -> None:
    original = api.post("/v1/jobs", json={"input": "fails once [[fail=400,times=1]]"}).json()["id"]
    run_worker(services, worker_handler)
    assert api.get(f"/v1/jobs/{original}").json()["status"] == "failed"

    retried = api.post(f"/v1/jobs/{original}/retry")
    again = api.post(f"/v1/jobs/{original}/retry")
    run_worker(services, worker_handler)

    assert retried.status_code == 202 and retried.headers["Location"] == f"/v1/jobs/{retried.json()['id']}"
    new = api.get(f"/v1/jobs/{retried.json()['id']}").json()
    assert new["retry_of"] == original and new["status"] == "completed" and new["id"] != original
    old = api.get(f"/v1/jobs/{original}").json()
    assert old["retried_by"] == new["id"] and old["status"] == "failed" and old["error"]["type"] == "provider_error"
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_retried"
    not_retryable = api.post(f"/v1/jobs/{new['id']}/retry")
    assert not_retryable.status_code == 409 and not_retryable.json()["error"]["code"] == "job_not_retryable"


def test_retry_with_an_idempotency_key_answers_the_same_job(api: Any, services: Services) -> None:
    original = api.post("/v1/jobs", json={"input": "cancel, then retry"}).json()["id"]
    api.delete(f"/v1/jobs/{original}")
    first = api.post(f"/v1/jobs/{original}/retry", headers={"Idempotency-Key": "retry-1"})
    replay = api.post(f"/v1/jobs/{original}/retry", headers={"Idempotency-Key": "retry-1"})
    assert first.status_code == replay.status_code == 202
    assert replay.json()["id"] == first.json()["id"] and replay.headers["Idempotent-Replayed"] == "true"
    assert first.json()["retry_of"] == original and first.json()["status"] == "queued"


def test_an_interrupted_retry_is_finished_by_the_next_call(api: Any, services: Services) -> None:
    original = api.post("/v1/jobs", json={"input": "retry dies after the mark"}).json()["id"]
    api.delete(f"/v1/jobs/{original}")
    job = services.store.get_job(original, consistent=True)
    assert job is not None and services.store.mark_retried(job, "job_01M8ZZZZZZZZZZZZZZZZZZZZZZ")  # then it died
    answer = api.post(f"/v1/jobs/{original}/retry")
    assert answer.status_code == 202 and answer.json()["id"] == "job_01M8ZZZZZZZZZZZZZZZZZZZZZZ"
    assert answer.json()["retry_of"] == original


def test_another_tenant_cannot_cancel_or_retry_a_job(api: Any, services: Services) -> None:
    job_id = api.post("/v1/jobs", json={"input": "mine"}).json()["id"]
    other = {"Authorization": f"Bearer {KEY_B}"}
    assert api.delete(f"/v1/jobs/{job_id}", headers=other).status_code == 404
    assert api.post(f"/v1/jobs/{job_id}/retry", headers=other).status_code == 404
    job = services.jobs.get_job(tenant=TENANT_A, job_id=job_id)
    assert job.status.value == "queued" and job.retried_by is None


def test_the_webhook_of_a_cancel_whose_enqueue_failed_is_queued_by_the_sweeper(api: Any, services: Services) -> None:
    job_id = api.post("/v1/jobs", json={"input": "cancel, deliveries down",
                                        "callback_url": "https://hooks.example.com/a"}).json()["id"]
    with sqs_down(services, queue_url=services.settings.deliveries_queue_url):
        assert api.delete(f"/v1/jobs/{job_id}").status_code == 200  # the cancel holds; its webhook waits
    assert _deliveries(services) == 0
    services.clock.advance(services.settings.sweep_grace_s + 1)  # type: ignore[attr-defined]
    assert services.sweeper.sweep().webhooks_queued == 1
    assert _deliveries(services) == 1


def test_a_cancel_stops_the_running_model_call(api: Any, services: Services, worker_handler: Any,
                                              fake_model: Any) -> None:
    # The model streams 100 tokens 200 ms apart (20 s); the worker reads the job's status every second meanwhile.
    prompt = "a long streamed answer [[tokens=100]] [[token_ms=200]]"
    job_id = api.post("/v1/jobs", json={"input": prompt}).json()["id"]
    worker = threading.Thread(target=run_worker, args=(services, worker_handler))
    worker.start()
    eventually(lambda: api.get(f"/v1/jobs/{job_id}").json()["status"] == "in_progress", timeout_s=10)
    assert api.delete(f"/v1/jobs/{job_id}").status_code == 200
    worker.join(timeout=15)
    assert not worker.is_alive()
    stats = eventually(lambda: (s := _stats(fake_model, prompt))["prompt_aborted"] and s, timeout_s=5)
    assert (stats["prompt"], stats["prompt_aborted"]) == (1, 1)  # the model saw its stream closed before the end
    # The stopped call was billed for what it read and made: its output so far, usage (counted by aijobs'
    # tokenizer, so marked estimated) and cost stay on the job.
    job = eventually(lambda: (j := api.get(f"/v1/jobs/{job_id}").json())["usage"] and j, timeout_s=5)
    assert job["status"] == "cancelled" and job["usage"]["estimated"] is True
    assert job["usage"]["input_tokens"] > 0 and 0 < job["usage"]["output_tokens"] < 100
    assert job["output"]["text"] and job["cost_usd"] is not None


def test_a_running_job_shows_its_output_so_far_and_the_pieces_add_up_to_its_output(
        api: Any, services: Services, worker_handler: Any) -> None:
    # 12 tokens 300 ms apart: the worker flushes what it has every second (a chunk of its output log, which carries
    # the progress so far).
    job_id = api.post("/v1/jobs", json={"input": "stream it [[tokens=12]] [[token_ms=300]]"}).json()["id"]
    worker = threading.Thread(target=run_worker, args=(services, worker_handler))
    worker.start()
    running = eventually(lambda: (j := api.get(f"/v1/jobs/{job_id}").json())["status"] == "in_progress"
                         and j["output"] and j["progress"] and j, timeout_s=15)
    worker.join(timeout=30)
    done = api.get(f"/v1/jobs/{job_id}").json()
    assert done["status"] == "completed" and done["progress"] is None
    assert done["output"]["text"].startswith(running["output"]["text"])  # the output so far was its beginning
    progress = running["progress"]
    assert 0 < progress["output_tokens"] < 12 and progress["output_chars"] == len(running["output"]["text"])
    assert progress["elapsed_ms"] > 0
    job = services.store.get_job(job_id)
    assert job is not None and job.output_seq is not None and job.output_seq >= 2
    # The log holds what was flushed while the model ran, in order; the job's output holds all of it (a stream
    # replays the log, then the rest of the output, from output_logged_chars on).
    flushed, _ = services.store.partial_output(job)
    assert flushed and done["output"]["text"].startswith(flushed) and job.output_logged_chars == len(flushed)


def test_the_worker_calls_only_the_dynamodb_actions_the_template_grants_it(
        api: Any, services: Services, worker_handler: Any, template: dict[str, Any]) -> None:
    from tests.unit.test_template_iam import _grants

    jobs = [api.post("/v1/jobs", json={"input": text, "stream": text.startswith("streamed")}).json()["id"]
            for text in ("plain", "streamed [[tokens=8]] [[token_ms=200]]", "cancelled [[tokens=40]] [[token_ms=200]]",
                         "fails [[fail=400]]", "retried [[fail=500,times=1]]", "silent for 1.5 s [[delay_ms=1500]]")]
    called: set[str] = set()
    batch_written: set[str] = set()  # the partitions the worker's BatchWriteItem calls reach

    def note(model: Any, params: dict[str, Any], **_: Any) -> None:
        if threading.current_thread().name.startswith("asyncio"):  # the worker's calls (asyncio.to_thread)
            called.add(f"dynamodb:{model.name}")
            if model.name == "BatchWriteItem":  # (params: the request as sent)
                for writes in json.loads(params["body"])["RequestItems"].values():
                    batch_written.update((w.get("PutRequest", {}).get("Item") or w["DeleteRequest"]["Key"])["pk"]["S"]
                                         for w in writes)

    events = services.dynamodb.meta.client.meta.events
    events.register("before-call.dynamodb", note)
    try:
        worker = threading.Thread(target=run_worker, args=(services, worker_handler))
        worker.start()
        eventually(lambda: api.get(f"/v1/jobs/{jobs[2]}").json()["status"] == "in_progress", timeout_s=10)
        api.delete(f"/v1/jobs/{jobs[2]}")
        worker.join(timeout=30)
    finally:
        events.unregister("before-call.dynamodb", note)
    granted = set().union(*_grants(template, "WorkerFunction").values())
    assert {"dynamodb:BatchGetItem", "dynamodb:UpdateItem"} <= called  # (the hook saw the worker)
    # (A slot given back looks for parked jobs to release only after one of its tenant's jobs parked: a Query of the
    # tenant's partition, and DeleteItem of a wait item; the grant of both is the concurrency tests' to exercise.)
    assert called <= granted, called - granted
    # BatchWriteItem is granted in output logs' partitions only (OUT#<job id>): the streamed job's pieces go there.
    assert batch_written and all(partition.startswith("OUT#") for partition in batch_written), batch_written


def test_deleting_a_jobs_content_keeps_its_accounting_and_a_running_job_is_cancelled_first(
        api: Any, services: Services, worker_handler: Any) -> None:
    job_id = api.post("/v1/jobs", json={"input": "zebraquartz [[tokens=200]] [[token_ms=20]]", "stream": True,
                                        "instructions": "mauvelantern"}).json()["id"]
    request = api.get(f"/v1/jobs/{job_id}/request").json()  # the body it was made from
    assert request["object"] == "job.request" and request["content_deleted_at"] is None
    assert request["request"]["input"].startswith("zebraquartz")
    assert request["request"]["instructions"] == "mauvelantern"
    worker = threading.Thread(target=run_worker, args=(services, worker_handler))
    worker.start()
    eventually(lambda: api.get(f"/v1/jobs/{job_id}").json()["progress"], timeout_s=10)
    # a piece where the output log was kept before it had a partition of its own (in the job's, OUT#<attempt>#<seq>)
    services.table.put_item(Item={"pk": f"JOB#{job_id}", "sk": "OUT#001#999999", "text": "zebraquartz, earlier"})

    answer = api.delete(f"/v1/jobs/{job_id}/content")
    worker.join(timeout=30)

    assert answer.status_code == 200
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "cancelled" and job["content_deleted_at"] and job["output"] is None
    assert job["usage"]["output_tokens"] > 0 and job["cost_usd"] > 0  # the stopped call was paid for
    items = str(services.table.scan()["Items"])
    assert "zebraquartz" not in items and "mauvelantern" not in items
    assert api.delete(f"/v1/jobs/{job_id}/content").json()["content_deleted_at"] == job["content_deleted_at"]
    request = api.get(f"/v1/jobs/{job_id}/request").json()
    assert request["content_deleted_at"] == job["content_deleted_at"] and request["request"]["input"] == ""
    assert "instructions" not in request["request"] and request["request"]["stream"] is True
    with api_client(KEY_B) as other:
        assert other.get(f"/v1/jobs/{job_id}/request").status_code == 404
