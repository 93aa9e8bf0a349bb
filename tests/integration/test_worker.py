"""The worker against moto and the fake model: claims, concurrency, retries, failures, poison messages."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from aijobs.local.pollers import FakeLambdaContext
from aijobs.local.server_process import UvicornThread
from aijobs.models.jobs import JobRequest
from aijobs.services import Services
from tests.helpers import load_event
from tests.integration.conftest import TENANT_A, run_worker


def _submit(services: Services, prompt: str, **fields: Any) -> str:
    return services.jobs.submit_job(tenant=TENANT_A, request=JobRequest(input=prompt, **fields)).id


def _job(services: Services, job_id: str) -> dict[str, Any]:
    return services.jobs.get_job(tenant=TENANT_A, job_id=job_id).to_public().model_dump(mode="json")


def _calls(fake_model: UvicornThread) -> int:
    return int(fake_model.server.config.app.state.calls["total"])


def test_job_runs_to_completed_with_output_usage_and_cost(services: Services, worker_handler: Any) -> None:
    job_id = _submit(services, "hello worker")
    result = run_worker(services, worker_handler)
    assert result["batchItemFailures"] == []
    job = _job(services, job_id)
    assert job["status"] == "completed" and job["attempt"] == 1
    assert job["output"]["text"] == "Echo: hello worker"
    assert job["usage"] == {"input_tokens": 2, "output_tokens": 3, "total_tokens": 5, "estimated": False}
    assert job["cost_usd"] > 0 and job["price_known"] is True and job["error"] is None
    assert job["created_at"] <= job["started_at"] <= job["completed_at"]


def test_a_model_without_a_known_price_is_charged_at_the_fallback_and_says_so(
        services: Services, worker_handler: Any) -> None:
    job_id = _submit(services, "hello unknown", model="my-own-llama")
    run_worker(services, worker_handler)
    job = _job(services, job_id)
    # 2 input and 3 output tokens at $10 and $30 per million: never free
    assert job["status"] == "completed" and job["price_known"] is False and job["cost_usd"] == 0.00011


def test_duplicate_delivery_runs_the_model_once(services: Services, worker_handler: Any,
                                                fake_model: UvicornThread) -> None:
    job_id = _submit(services, "only once please")
    event = load_event("sqs_job")
    event["Records"][0]["body"] = json.dumps({"job_id": job_id})
    twice = {"Records": [event["Records"][0], {**event["Records"][0], "messageId": "second-copy"}]}
    before = _calls(fake_model)
    # The copy that finds the job running is kept until the running attempt's lease ends, never dropped.
    assert len(worker_handler(twice, FakeLambdaContext("WorkerFunction"))["batchItemFailures"]) == 1
    assert worker_handler(event, FakeLambdaContext("WorkerFunction"))["batchItemFailures"] == []  # finished: done
    assert _calls(fake_model) - before == 1
    assert _job(services, job_id)["status"] == "completed"


def test_the_jobs_of_one_batch_call_the_model_concurrently(services: Services, worker_handler: Any,
                                                            fake_model: UvicornThread) -> None:
    # Each call long enough that ten claims (a few moto calls each, slower on a loaded machine) fit inside it.
    ids = [_submit(services, f"slow {i} [[delay_ms=2000]]") for i in range(10)]
    calls = fake_model.server.config.app.state.calls
    calls["max_in_flight"] = 0
    assert run_worker(services, worker_handler)["received"] == 10
    assert all(_job(services, i)["status"] == "completed" for i in ids)
    assert calls["max_in_flight"] == 10  # all ten model calls were open at the same time


def test_provider_429_goes_back_to_the_queue_then_succeeds(services: Services, worker_handler: Any) -> None:
    job_id = _submit(services, "busy [[fail=429,times=1]]")
    first = run_worker(services, worker_handler)
    assert len(first["batchItemFailures"]) == 1
    queued = _job(services, job_id)
    assert queued["status"] == "queued" and queued["attempt"] == 1
    assert queued["error"]["type"] == "provider_rate_limited"
    assert run_worker(services, worker_handler)["batchItemFailures"] == []
    done = _job(services, job_id)
    assert done["status"] == "completed" and done["attempt"] == 2 and done["error"] is None


def test_retryable_errors_fail_the_job_after_max_attempts(services: Services, worker_handler: Any) -> None:
    job_id = _submit(services, "always down [[fail=503]]")
    for _ in range(services.settings.max_attempts):
        run_worker(services, worker_handler)
    job = _job(services, job_id)
    assert job["status"] == "failed" and job["attempt"] == services.settings.max_attempts
    assert job["error"] == {"type": "provider_error", "code": "http_503", "retryable": False,  # final: it ran out
                            "message": "the model provider answered HTTP 503"}
    assert run_worker(services, worker_handler)["received"] == 0  # nothing left on the queue


def test_provider_400_fails_the_job_at_once(services: Services, worker_handler: Any) -> None:
    job_id = _submit(services, "bad request [[fail=400]]")
    assert run_worker(services, worker_handler)["batchItemFailures"] == []
    job = _job(services, job_id)
    assert job["status"] == "failed" and job["attempt"] == 1
    assert job["error"]["code"] == "http_400" and job["error"]["retryable"] is False


def test_provider_timeout_is_retryable(services: Services, worker_handler: Any) -> None:
    job_id = _submit(services, "too slow [[delay_ms=3000]]", timeout_s=1)
    run_worker(services, worker_handler)
    job = _job(services, job_id)
    assert job["status"] == "queued" and job["error"]["type"] == "provider_timeout"


def test_poison_message_fails_alone_and_the_rest_of_the_batch_completes(services: Services,
                                                                        worker_handler: Any) -> None:
    event = load_event("sqs_batch_with_poison")
    ids = [_submit(services, "first"), _submit(services, "third")]
    event["Records"][0]["body"] = json.dumps({"job_id": ids[0]})
    event["Records"][2]["body"] = json.dumps({"job_id": ids[1]})
    result = worker_handler(event, FakeLambdaContext("WorkerFunction"))
    assert result["batchItemFailures"] == [{"itemIdentifier": event["Records"][1]["messageId"]}]
    assert [_job(services, i)["status"] for i in ids] == ["completed", "completed"]


def test_job_of_a_dead_worker_is_reclaimed_after_its_lease(services: Services, worker_handler: Any) -> None:
    job_id = _submit(services, "survivor")
    assert services.store.claim_job(job_id, lease_s=900) is not None  # a worker claimed it, then died
    event = load_event("sqs_job")
    event["Records"][0]["body"] = json.dumps({"job_id": job_id})
    worker_handler(event, FakeLambdaContext("WorkerFunction"))
    assert _job(services, job_id)["status"] == "in_progress"  # the lease still holds
    services.clock.advance(900 + 1)  # type: ignore[attr-defined]  # the dead worker's lease runs out
    worker_handler(event, FakeLambdaContext("WorkerFunction"))
    job = _job(services, job_id)
    assert job["status"] == "completed" and job["attempt"] == 2


def test_api_handler_submits_from_a_real_api_gateway_event(services: Services) -> None:
    from aijobs.local.stack import load_handler

    handler = load_handler("api", "handler")
    response = handler(load_event("api_submit_job"), FakeLambdaContext("ApiFunction", timeout_s=29))
    assert response["statusCode"] == 202
    job = json.loads(response["body"])
    assert response["headers"]["x-request-id"] == "Kx1aAbCdIAMEVxw="
    get_event = load_event("api_get_job")
    get_event["rawPath"] = get_event["requestContext"]["http"]["path"] = f"/v1/jobs/{job['id']}"
    fetched = handler(get_event, FakeLambdaContext("ApiFunction", timeout_s=29))
    assert fetched["statusCode"] == 200 and json.loads(fetched["body"])["id"] == job["id"]
    replay = handler(load_event("api_submit_job"), FakeLambdaContext("ApiFunction", timeout_s=29))
    assert json.loads(replay["body"])["id"] == job["id"]  # the event carries an Idempotency-Key


def test_api_function_does_not_import_openai() -> None:
    code = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('app', 'functions/api/app.py');"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m);"
            "print('openai' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"AWS_DEFAULT_REGION": "us-east-1", "PATH": ""})
    assert out.stdout.strip() == "False"


def test_output_too_large_for_an_item_is_kept_in_s3_and_read_back(services: Services, worker_handler: Any,
                                                                    api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import aijobs.store

    monkeypatch.setattr(aijobs.store, "INLINE_OUTPUT_BYTES", 20_000)  # 100 KB in AWS: the same path, a fifth of it
    job_id = _submit(services, "long answer [[tokens=8000]]")  # about 48 KB of output
    assert run_worker(services, worker_handler)["batchItemFailures"] == []
    item = services.dynamodb.Table(services.settings.jobs_table).get_item(
        Key={"pk": f"JOB#{job_id}", "sk": "JOB"})["Item"]
    assert "output_text" not in item and item["output_key"] == f"outputs/{job_id}/1"
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "completed"
    words = job["output"]["text"].split()
    assert words[:3] == ["Echo:", "long", "answer"] and len(words) == 8000
    assert "output_key" not in job


def test_a_job_records_the_model_that_answered_and_why_it_stopped(
        api: Any, services: Services, worker_handler: Any) -> None:
    capped = api.post("/v1/jobs", json={"input": "one two three four five six", "max_output_tokens": 3}).json()["id"]
    whole = api.post("/v1/jobs", json={"input": "short"}).json()["id"]

    run_worker(services, worker_handler)

    capped_job, whole_job = api.get(f"/v1/jobs/{capped}").json(), api.get(f"/v1/jobs/{whole}").json()
    assert (capped_job["status"], capped_job["finish_reason"]) == ("completed", "length")
    assert (whole_job["finish_reason"], whole_job["provider_model"]) == ("stop", "fake-model")
