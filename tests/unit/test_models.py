"""What a client may send: the job request's validation and the typed errors it produces."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aijobs.errors import InvalidRequest, MalformedRequest, PayloadTooLarge, from_validation_errors
from aijobs.models.jobs import MAX_INPUT_CHARS, Job, JobRequest, JobStatus
from aijobs.models.messages import JobMessage


def _error_for(body: dict[str, object]) -> Exception:
    with pytest.raises(ValidationError) as caught:
        JobRequest.model_validate(body)
    return from_validation_errors(caught.value.errors())


@pytest.mark.parametrize("body", [
    {"input": "hello"},
    {"input": [{"role": "user", "content": "hi"}], "instructions": "be brief", "model": "gpt-4o"},
    {"input": "x", "max_output_tokens": 1, "temperature": 0, "stream": True, "timeout_s": 840,
     "metadata": {"k": "v"}},
])
def test_valid_job_requests_are_accepted(body: dict[str, object]) -> None:
    assert JobRequest.model_validate(body).input


@pytest.mark.parametrize(("body", "field"), [
    ({}, "input"),
    ({"input": ""}, "input"),
    ({"input": "   "}, "input"),
    ({"input": []}, "input"),
    ({"input": [{"role": "robot", "content": "hi"}]}, "input"),
    ({"input": "hi", "temperature": 3}, "temperature"),
    ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
    ({"input": "hi", "timeout_s": 0}, "timeout_s"),
    ({"input": "hi", "metadata": {str(i): "v" for i in range(17)}}, "metadata"),
    ({"input": "hi", "metadata": {"k": "v" * 513}}, "metadata"),
    ({"input": "hi", "surprise": 1}, "surprise"),
])
def test_invalid_job_request_is_422_naming_the_field(body: dict[str, object], field: str) -> None:
    error = _error_for(body)
    assert isinstance(error, InvalidRequest) and error.status == 422
    assert field in error.message


def test_too_long_input_is_413_payload_too_large() -> None:
    error = _error_for({"input": "a" * (MAX_INPUT_CHARS + 1)})
    assert isinstance(error, PayloadTooLarge) and error.status == 413


def test_instructions_count_towards_the_input_limit() -> None:
    error = _error_for({"input": "a" * (MAX_INPUT_CHARS - 10), "instructions": "b" * 20})
    assert isinstance(error, PayloadTooLarge)


def test_validation_errors_never_echo_the_prompt() -> None:
    secret_prompt = "my confidential prompt 12345"
    error = _error_for({"input": secret_prompt, "temperature": "hot"})
    assert secret_prompt not in error.message
    assert "hot" not in error.message


def test_malformed_json_is_a_400() -> None:
    error = from_validation_errors([{"type": "json_invalid", "loc": ("body", 1), "msg": "JSON decode error"}])
    assert isinstance(error, MalformedRequest) and error.status == 400


def test_public_job_has_the_documented_shape() -> None:
    job = Job(id="job_01J0000000000000000000000A", tenant="t", status=JobStatus.queued, model="m",
              request=JobRequest(input="hi", metadata={"a": "b"}), created_at=1)
    public = job.to_public().model_dump()
    assert set(public) == {"id", "object", "status", "model", "kind", "created_at", "started_at", "completed_at",
                           "output", "usage", "cost_usd", "price_known", "error", "attempt", "metadata", "schedule_id",
                           "retry_of", "retried_by", "progress", "duration_ms", "stream_url", "status_details",
                           "provider_model", "backend", "finish_reason", "prompt_id", "prompt_version",
                           "content_deleted_at", "priority", "batch_id"}
    assert public["object"] == "job" and public["metadata"] == {"a": "b"} and "tenant" not in public
    assert public["priority"] == "normal"  # unset: the normal lane
    assert public["stream_url"] is None and public["duration_ms"] is None
    streamed = job.to_public(stream_base="https://s.example/")
    assert streamed.stream_url == "https://s.example/v1/jobs/job_01J0000000000000000000000A/stream"


@pytest.mark.parametrize("body", [
    '{"job_id": "nope"}', "{}", "[]", '{"job_id": "job_01J0000000000000000000000A", "x": 1}'])
def test_jobs_message_must_name_a_job_id(body: str) -> None:
    with pytest.raises(ValidationError):
        JobMessage.model_validate_json(body)
