"""The fake model's other kinds of answer, through the official openai SDK (on 127.0.0.1): embeddings, images, and
structured outputs that fit (or, on request, do not fit) their JSON schema."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Iterator

import jsonschema
import openai
import pytest

from aijobs.local import fake_kinds
from aijobs.local.server_process import UvicornThread

SCHEMA = {"type": "object", "additionalProperties": False, "required": ["name", "age", "tags", "kind", "ok"],
          "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 18},
                         "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
                         "kind": {"enum": ["person", "company"]}, "ok": {"type": "boolean"},
                         "note": {"type": ["string", "null"]}}}


@pytest.fixture
def sdk(fake_model: UvicornThread) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{fake_model.url}/v1", api_key="fake", max_retries=0) as client:
        yield client


def test_embeddings_are_deterministic_unit_vectors_of_the_asked_dimensions(sdk: openai.OpenAI) -> None:
    answer = sdk.embeddings.create(model="fake-embedding", input=["one text", "another", "one text"], dimensions=64)

    vectors = [item.embedding for item in answer.data]  # the SDK asks for base64 and decodes it
    assert [len(v) for v in vectors] == [64, 64, 64] and [item.index for item in answer.data] == [0, 1, 2]
    assert vectors[0] == pytest.approx(vectors[2]) and vectors[0] != pytest.approx(vectors[1])
    assert sum(x * x for x in vectors[1]) == pytest.approx(1.0, abs=1e-4)
    assert answer.usage.prompt_tokens == 5  # a word a token: 2 + 1 + 2
    plain = sdk.embeddings.create(model="fake-embedding", input="one text", encoding_format="float")
    assert len(plain.data[0].embedding) == fake_kinds.DEFAULT_DIMENSIONS


def test_embeddings_honour_the_fail_directive(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError):
        sdk.embeddings.create(model="fake-embedding", input=["fine", "broken [[fail=503]]"])


def test_an_image_is_a_valid_png_of_the_asked_size(sdk: openai.OpenAI) -> None:
    answer = sdk.images.generate(model="fake-image", prompt="a red boat", size="256x128", n=2)

    assert answer.data is not None and len(answer.data) == 2
    image = base64.b64decode(answer.data[0].b64_json or "")
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", image[16:24])
    assert (width, height) == (256, 128)
    length = struct.unpack(">I", image[33:37])[0]  # the IDAT block after IHDR
    assert len(zlib.decompress(image[41:41 + length])) == height * (1 + 3 * width)
    assert answer.data[0].b64_json != answer.data[1].b64_json


def test_a_bad_image_size_is_a_400(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        sdk.images.generate(model="fake-image", prompt="x", size="huge")


def test_a_json_schema_request_is_answered_with_json_that_fits_it(sdk: openai.OpenAI) -> None:
    for stream in (False, True):
        response_format = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA, "strict": True}}
        if stream:
            chunks = sdk.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "Ann"}],
                                                 response_format=response_format, stream=True)  # type: ignore[call-overload]
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            answer = sdk.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "Ann"}],
                                                 response_format=response_format)  # type: ignore[call-overload]
            text = answer.choices[0].message.content or ""
        value = json.loads(text)
        jsonschema.validate(value, SCHEMA)
        assert value["name"] == "Ann" and value["age"] == 18 and value["kind"] == "person"


def test_the_invalid_json_directive_answers_json_that_does_not_fit(sdk: openai.OpenAI) -> None:
    answer = sdk.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "Ann [[invalid_json=1]]"}],
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}})  # type: ignore[call-overload]

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(answer.choices[0].message.content or ""), SCHEMA)


def test_a_json_object_request_is_answered_with_an_object(sdk: openai.OpenAI) -> None:
    answer = sdk.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "hi there"}],
                                         response_format={"type": "json_object"})

    assert json.loads(answer.choices[0].message.content or "") == {"echo": "hi there"}
