"""Job kinds through the worker, against moto and the fake model: structured outputs (parsed, or output_invalid and
run again once), embedding jobs (a JSON Lines file of vectors) and image jobs (PNG files), with usage and cost."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

import pytest

from aijobs.local import fake_kinds
from aijobs.models.jobs import JobRequest
from aijobs.pricing import image_cost
from aijobs.services import Services
from tests.integration.conftest import TENANT_A, run_worker

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "year": {"type": "integer"}},
          "required": ["name", "year"], "additionalProperties": False}
FORMAT = {"type": "json_schema", "json_schema": {"name": "film", "schema": SCHEMA, "strict": True}}


def _submit(services: Services, **fields: Any) -> str:
    return services.jobs.submit_job(tenant=TENANT_A, request=JobRequest(**fields)).id


def _public(services: Services, job_id: str) -> dict[str, Any]:
    job = services.jobs.get_job(tenant=TENANT_A, job_id=job_id)
    return job.to_public(link=services.file_link).model_dump(mode="json")


def _run_all(services: Services, worker: Any, rounds: int = 5) -> None:
    for _ in range(rounds):
        if run_worker(services, worker)["received"] == 0:
            return


def _object(services: Services, url: str) -> bytes:
    """The object a presigned URL names, read through S3 (moto here is in-process: no HTTP to fetch it by)."""
    bucket, _, key = urlparse(url).path.lstrip("/").partition("/")
    if bucket != services.settings.results_bucket:  # virtual-hosted style: the bucket is in the host name
        bucket, key = services.settings.results_bucket, urlparse(url).path.lstrip("/")
    return bytes(services.session.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def test_a_structured_job_shows_its_output_parsed(services: Services, worker_handler: Any) -> None:
    job_id = _submit(services, input="a film", response_format=FORMAT)
    _run_all(services, worker_handler)
    job = _public(services, job_id)
    assert job["status"] == "completed", job["error"]
    assert job["output"]["parsed"] == json.loads(job["output"]["text"])
    assert set(job["output"]["parsed"]) == {"name", "year"} and isinstance(job["output"]["parsed"]["year"], int)


def test_an_output_that_does_not_match_runs_again_once_then_fails_naming_the_path(
        services: Services, worker_handler: Any) -> None:
    job_id = _submit(services, input="[[invalid_json=1]] secret plot", response_format=FORMAT)
    _run_all(services, worker_handler)
    job = _public(services, job_id)
    assert job["status"] == "failed" and job["attempt"] == 2  # the first attempt's output was retried once
    error = job["error"]
    assert error["type"] == "output_invalid" and error["code"] == "schema_mismatch" and not error["retryable"]
    assert "film" in error["message"] and "$" in error["message"]
    assert "secret" not in error["message"]  # the output (which echoes the input) is never repeated
    # both attempts were paid for: the job's usage and cost are their sum, and the day counts exactly that
    single = services.jobs.get_job(tenant=TENANT_A, job_id=_run_one_valid(services, worker_handler))
    assert job["usage"]["input_tokens"] >= 2 * single.usage.input_tokens  # type: ignore[union-attr]
    day = services.usage_store.days(TENANT_A, *[_today()] * 2)
    spent = sum(Decimal(str(item.get("cost_usd", 0))) for item in day.values())
    assert spent == Decimal(str(job["cost_usd"])) + single.cost_usd


def _run_one_valid(services: Services, worker: Any) -> str:
    job_id = _submit(services, input="a film", response_format=FORMAT)
    _run_all(services, worker)
    return job_id


def _today() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC).date()


def test_json_object_mode_needs_an_object(services: Services, worker_handler: Any) -> None:
    job_id = _submit(services, input="hello", response_format={"type": "json_object"})
    _run_all(services, worker_handler)
    assert _public(services, job_id)["output"]["parsed"] == {"echo": "hello"}


def test_an_embedding_job_keeps_its_vectors_in_a_file(services: Services, worker_handler: Any) -> None:
    texts = [f"text number {i}" for i in range(1000)]
    job_id = _submit(services, kind="embedding", model="text-embedding-3-small", input=texts, dimensions=64)
    _run_all(services, worker_handler)
    job = _public(services, job_id)
    assert job["status"] == "completed", job["error"]
    output = job["output"]
    assert output["count"] == 1000 and output["dimensions"] == 64 and output["format"] == "jsonl"
    assert output["expires_at"] > job["completed_at"]
    lines = [json.loads(line) for line in _object(services, output["url"]).decode().splitlines()]
    assert [line["index"] for line in lines] == list(range(1000))
    assert lines[7]["embedding"] == fake_kinds.embedding("text number 7", 64)
    # priced as text-embedding-3-small's input tokens ($0.02 a million): never free, never the fallback
    assert job["usage"]["input_tokens"] == 3000 and job["usage"]["output_tokens"] == 0
    assert job["price_known"] is True and job["cost_usd"] == pytest.approx(3000 * 0.02 / 1e6)
    # the item keeps no vectors: only the file's key
    item = services.table.get_item(Key={"pk": f"JOB#{job_id}", "sk": "JOB"})["Item"]
    assert "output_text" not in item and len(item["output_files"]) == 1


def test_an_image_job_keeps_its_pngs(services: Services, worker_handler: Any) -> None:
    job_id = _submit(services, kind="image", model="dall-e-3", input="a red bicycle", size="1024x1792", n=2)
    _run_all(services, worker_handler)
    job = _public(services, job_id)
    assert job["status"] == "completed", job["error"]
    images = [_object(services, image["url"]) for image in job["output"]["images"]]
    assert len(images) == 2 and all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in images)
    assert images[0] == fake_kinds.png("0:a red bicycle", 1024, 1792)
    assert job["usage"]["images"] == 2
    assert Decimal(str(job["cost_usd"])) == image_cost("dall-e-3", size="1024x1792", count=2).cost_usd == Decimal(
        "0.16")


def test_a_failing_image_call_is_retried_then_fails_typed(services: Services, worker_handler: Any) -> None:
    job_id = _submit(services, kind="image", input="[[fail=400]] a cat")
    _run_all(services, worker_handler)
    job = _public(services, job_id)
    assert job["status"] == "failed" and job["error"]["code"] == "http_400" and job["output"] is None


def test_deleting_a_jobs_content_deletes_its_files(services: Services, worker_handler: Any) -> None:
    job_id = _submit(services, kind="image", input="a boat")
    _run_all(services, worker_handler)
    url = _public(services, job_id)["output"]["images"][0]["url"]
    services.jobs.delete_content(tenant=TENANT_A, job_id=job_id)
    assert _public(services, job_id)["output"] is None
    with pytest.raises(services.session.client("s3").exceptions.NoSuchKey):
        _object(services, url)


def test_over_http_a_bad_kind_request_is_a_typed_422_and_stores_nothing(services: Services, api: Any) -> None:
    answer = api.post("/v1/jobs", json={"kind": "embedding", "input": ["a", "b"], "temperature": 0.5})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["type"] == "invalid_request" and "temperature cannot be set on an embedding job" in error["message"]
    assert api.get("/v1/jobs").json()["data"] == []


def test_over_http_a_file_job_answers_presigned_urls(services: Services, api: Any, worker_handler: Any) -> None:
    job_id = api.post("/v1/jobs", json={"kind": "image", "input": "a lighthouse", "size": "256x256"}).json()["id"]
    _run_all(services, worker_handler)
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["kind"] == "image" and job["status"] == "completed"
    url = job["output"]["images"][0]["url"]
    assert "X-Amz-Signature=" in url and f"outputs/{job_id}/1/image-0.png" in url
    assert _object(services, url) == fake_kinds.png("0:a lighthouse", 256, 256)
    # each read signs anew (the URL expires; the file does not until the job's retention ends)
    listed = api.get("/v1/jobs").json()["data"][0]
    assert listed["output"]["images"][0]["url"].split("?")[0] == url.split("?")[0]
