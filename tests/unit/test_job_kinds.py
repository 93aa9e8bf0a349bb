"""Job kinds without I/O: what each kind's request takes, the structured-output check, embedding and image prices."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from aijobs.models.jobs import MAX_EMBEDDING_INPUTS, MAX_SCHEMA_DEPTH, Job, JobRequest, JobStatus
from aijobs.pricing import FALLBACK_PER_IMAGE, estimate_cost, image_cost
from aijobs.structured import check_output

SCHEMA = {"type": "object", "properties": {"items": {"type": "array", "items": {
    "type": "object", "properties": {"price": {"type": "number"}}, "required": ["price"]}}}, "required": ["items"]}


def _format(schema: dict[str, Any] = SCHEMA) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "invoice", "schema": schema, "strict": True}}


def _error(**fields: Any) -> str:
    with pytest.raises(ValidationError) as raised:
        JobRequest(**fields)
    return str(raised.value)


def test_text_is_the_default_kind_and_takes_a_response_format() -> None:
    request = JobRequest(input="x", response_format=_format())
    assert request.kind == "text" and request.response_format is not None
    # sent to the provider as the client spelled it (`schema`, not the attribute's name)
    assert request.response_format.model_dump(exclude_none=True)["json_schema"]["schema"] == SCHEMA


def test_a_schema_read_back_from_dynamodb_is_plain_json_again() -> None:
    stored = _format({"type": "number", "minimum": Decimal("0.5"), "maximum": Decimal("10")})
    request = JobRequest(input="x", response_format=stored)
    assert request.response_format is not None
    assert request.response_format.model_dump()["json_schema"]["schema"] == {"type": "number", "minimum": 0.5,
                                                                             "maximum": 10}


@pytest.mark.parametrize(("fields", "says"), [
    ({"input": "x", "response_format": _format({"type": "nope"})}, "not a valid JSON Schema"),
    ({"input": "x", "response_format": {"type": "json_schema", "json_schema": {"name": "a b", "schema": {}}}},
     "name"),
    ({"input": "x", "response_format": {"type": "xml"}}, "response_format"),
    ({"input": "x", "response_format": _format({"$ref": "https://example.com/s.json"})}, "nothing is fetched"),
    ({"input": "x", "response_format": _format({"$ref": "#/$defs/gone"})}, "points nowhere"),
    ({"input": ["a", "b"]}, "a list of strings is an embedding job's"),
    ({"input": "x", "kind": "embedding", "temperature": 1}, "temperature cannot be set on an embedding job"),
    ({"input": "x", "kind": "embedding", "stream": True}, "stream cannot be set on an embedding job"),
    ({"input": [{"role": "user", "content": "x"}], "kind": "embedding"}, "a string or a list of strings"),
    ({"input": ["x"] * (MAX_EMBEDDING_INPUTS + 1), "kind": "embedding"}, "at most 2048"),
    ({"input": ["x", ""], "kind": "embedding"}, "at least 1 character"),
    ({"input": ["a", "b"], "kind": "image"}, "the image's description"),
    ({"input": "x", "kind": "image", "size": "1000x1000"}, "size"),
    ({"input": "x", "kind": "image", "n": 11}, "less than or equal to 10"),
    ({"input": "x", "size": "1024x1024"}, "size cannot be set on a text job"),
    ({"input": "x", "kind": "image", "response_format": {"type": "json_object"}}, "response_format cannot be set"),
    ({"input": "x", "kind": "audio"}, "kind"),
])
def test_each_kind_refuses_what_it_cannot_do(fields: dict[str, Any], says: str) -> None:
    assert says in _error(**fields)


def test_a_schema_nested_too_deep_is_refused_before_it_is_walked() -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(MAX_SCHEMA_DEPTH):
        schema = {"type": "array", "items": schema}
    assert "at most 32 levels" in _error(input="x", response_format=_format(schema))


def test_a_matching_output_passes_and_json_object_needs_an_object() -> None:
    request = JobRequest(input="x", response_format=_format())
    assert request.response_format is not None
    assert check_output(request.response_format, json.dumps({"items": [{"price": 1.5}]})) is None
    json_object = JobRequest(input="x", response_format={"type": "json_object"}).response_format
    assert json_object is not None
    assert check_output(json_object, '{"a": 1}') is None
    error = check_output(json_object, "[1, 2]")
    assert error is not None and error.code == "not_json_object"


def test_a_mismatch_names_the_first_failing_path_and_never_the_output() -> None:
    response_format = JobRequest(input="x", response_format=_format()).response_format
    assert response_format is not None
    error = check_output(response_format, json.dumps({"items": [{"price": 1}, {"price": "SECRET-VALUE"}]}))
    assert error is not None and error.type == "output_invalid" and error.code == "schema_mismatch"
    assert "$.items[1].price" in error.message and 'type "number"' in error.message
    assert "SECRET" not in error.message
    assert check_output(response_format, "not json").code == "not_json"  # type: ignore[union-attr]
    truncated = check_output(response_format, '{"items": [', finish_reason="length")
    assert truncated is not None and truncated.code == "output_truncated"


def test_the_parsed_output_is_shown_only_for_a_completed_structured_job() -> None:
    request = JobRequest(input="x", response_format={"type": "json_object"})
    job = Job(id="job_1", tenant="t", status=JobStatus.completed, model="m", request=request, created_at=1,
              output_text='{"a": 1}')
    assert job.to_public().output.parsed == {"a": 1}  # type: ignore[union-attr]
    plain = job.model_copy(update={"request": JobRequest(input="x")})
    assert plain.to_public().output.parsed is None  # type: ignore[union-attr]


def test_an_embedding_or_image_job_shows_its_files_only_with_links() -> None:
    job = Job(id="job_1", tenant="t", status=JobStatus.completed, model="m", created_at=1,
              request=JobRequest(input=["a", "b", "c"], kind="embedding"), output_files=["k"], output_dimensions=8)
    assert job.to_public().output is None  # no way to link the file: no URL is made up

    def link(key: str) -> Any:
        from aijobs.models.jobs import FileLink

        return FileLink(url=f"https://bucket/{key}?signed", expires_at=99)

    output = job.to_public(link=link).model_dump()["output"]
    assert output == {"url": "https://bucket/k?signed", "dimensions": 8, "count": 3, "format": "jsonl",
                      "expires_at": 99}
    image = job.model_copy(update={"request": JobRequest(input="a cat", kind="image", n=2),
                                   "output_files": ["k0", "k1"]})
    assert image.to_public(link=link).model_dump()["output"] == {
        "images": [{"url": "https://bucket/k0?signed"}, {"url": "https://bucket/k1?signed"}], "expires_at": 99}


def test_embeddings_and_images_are_priced_and_never_free() -> None:
    embedding = estimate_cost("text-embedding-3-small", input_tokens=1_000_000, output_tokens=0)
    assert embedding.known and embedding.cost_usd == Decimal("0.02")
    assert image_cost("dall-e-3", size="1024x1024", count=3).cost_usd == Decimal("0.12")
    assert image_cost("dall-e-2", size=None, count=1).cost_usd == Decimal("0.02")  # the default size
    # gpt-image-1 reports image tokens: priced by them ($40 a million output tokens)
    tokens = image_cost("gpt-image-1", size=None, count=1, input_tokens=0, output_tokens=1_000_000)
    assert tokens.known and tokens.cost_usd == Decimal("40")
    unknown = image_cost("my-image-model", size="512x512", count=2)
    assert not unknown.known and unknown.cost_usd == 2 * FALLBACK_PER_IMAGE


def test_an_output_nested_past_the_parser_or_a_schema_that_cannot_be_applied_is_a_typed_error() -> None:
    response_format = JobRequest(input="x", response_format=_format()).response_format
    assert response_format is not None
    assert check_output(response_format, "[" * 100_000 + "]" * 100_000).code == "not_json"  # type: ignore[union-attr]
    anchored = JobRequest(input="x", response_format=_format({"$ref": "#no-such-anchor"})).response_format
    assert anchored is not None
    assert check_output(anchored, "{}").code == "schema_unusable"  # type: ignore[union-attr]
