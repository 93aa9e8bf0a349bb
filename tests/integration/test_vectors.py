"""aijobs.vectors.VectorIndex against moto's S3 Vectors (QueryVectors emulated), on the index template.yaml declares."""

from __future__ import annotations

import math
from typing import Any

import boto3
import pytest

from aijobs.errors import InvalidRequest, PayloadTooLarge
from aijobs.local.fake_kinds import embedding
from aijobs.local.template import LocalResources
from aijobs.services import Services
from aijobs.vectors import TEXT_LIMIT, Chunk, VectorIndex

DIMENSION = 1536  # the template's VectorDimension default


@pytest.fixture
def index(aws: tuple[boto3.session.Session, LocalResources]) -> VectorIndex:
    session, resources = aws
    return VectorIndex(client=session.client("s3vectors"), index_arn=resources.arns["VectorIndex"],
                       dimension=DIMENSION)


def _chunks(tenant: str, collection: str, document: str, texts: list[str]) -> list[Chunk]:
    return [Chunk(tenant, collection, document, n, embedding(text, DIMENSION), text) for n, text in enumerate(texts)]


TEXTS = ["the cat sat on the mat", "tax returns are due in april", "a recipe for lemon cake"]


def test_a_chunk_is_found_by_its_own_vector_with_score_1_and_its_text(index: VectorIndex) -> None:
    index.put(_chunks("t1", "col_1", "doc_1", TEXTS))

    matches = index.query(embedding(TEXTS[1], DIMENSION), tenant="t1", collection_id="col_1", top_k=3)

    assert matches[0].key == "t1#col_1#doc_1#1"
    assert (matches[0].document_id, matches[0].chunk, matches[0].text) == ("doc_1", 1, TEXTS[1])
    assert matches[0].score == pytest.approx(1.0, abs=1e-6)
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)
    assert all(-1.0 <= m.score <= 1.0 for m in matches) and len(matches) == 3


def test_another_tenants_chunks_are_never_found_even_in_a_same_named_collection(index: VectorIndex) -> None:
    index.put(_chunks("t1", "col_1", "doc_1", TEXTS[:1]))
    index.put(_chunks("t2", "col_1", "doc_1", TEXTS))  # the same ids: the keys differ by tenant

    matches = index.query(embedding(TEXTS[0], DIMENSION), tenant="t1", collection_id="col_1", top_k=10)
    sneaky = index.query(embedding(TEXTS[1], DIMENSION), tenant="t1", collection_id="col_1", top_k=10,
                         filter={"$or": [{"tenant": "t2"}, {"document_id": "doc_1"}]})

    assert [m.key for m in matches] == ["t1#col_1#doc_1#0"]
    assert [m.key for m in sneaky] == ["t1#col_1#doc_1#0"]  # a caller's filter narrows, never widens


def test_a_filter_narrows_to_one_document(index: VectorIndex) -> None:
    index.put(_chunks("t1", "col_1", "doc_1", TEXTS) + _chunks("t1", "col_1", "doc_2", TEXTS))

    matches = index.query(embedding(TEXTS[2], DIMENSION), tenant="t1", collection_id="col_1", top_k=10,
                          filter={"document_id": {"$eq": "doc_2"}})

    assert {m.document_id for m in matches} == {"doc_2"} and matches[0].chunk == 2


def test_deleting_a_document_removes_its_chunks_and_nothing_else(index: VectorIndex) -> None:
    index.put(_chunks("t1", "col_1", "doc_1", TEXTS) + _chunks("t1", "col_1", "doc_2", TEXTS[:1]))

    index.delete_document("t1", "col_1", "doc_1", chunk_count=3)
    index.delete_document("t1", "col_1", "doc_9", chunk_count=2)  # nothing there: no error

    found = index.query(embedding(TEXTS[0], DIMENSION), tenant="t1", collection_id="col_1", top_k=10)
    assert [m.key for m in found] == ["t1#col_1#doc_2#0"]


def test_deleting_a_collection_removes_every_document_of_it(index: VectorIndex) -> None:
    index.put(_chunks("t1", "col_1", "doc_1", TEXTS) + _chunks("t1", "col_1", "doc_2", TEXTS[:2])
              + _chunks("t1", "col_2", "doc_1", TEXTS[:1]))

    index.delete_collection("t1", "col_1", {"doc_1": 3, "doc_2": 2})

    assert index.query(embedding(TEXTS[0], DIMENSION), tenant="t1", collection_id="col_1", top_k=10) == []
    assert len(index.query(embedding(TEXTS[0], DIMENSION), tenant="t1", collection_id="col_2", top_k=10)) == 1


def test_vectors_are_stored_as_float32(index: VectorIndex, aws: tuple[boto3.session.Session, LocalResources]) -> None:
    session, resources = aws
    vector = [0.1] * DIMENSION
    index.put([Chunk("t1", "col_1", "doc_1", 0, vector, "x")])

    stored = session.client("s3vectors").get_vectors(indexArn=resources.arns["VectorIndex"], keys=["t1#col_1#doc_1#0"],
                                                     returnData=True)["vectors"][0]["data"]["float32"]

    assert stored[0] == pytest.approx(0.1, abs=1e-7) and stored[0] != 0.1  # 0.1 has no exact float32


@pytest.mark.parametrize(("chunk", "error"), [
    (Chunk("t1", "col_1", "doc_1", 0, [1.0] * 256, "x"), InvalidRequest),  # the fake model's default dimension
    (Chunk("t1", "col_1", "doc_1", 0, [0.0] * DIMENSION, "x"), InvalidRequest),  # cosine has no zero vector
    (Chunk("t1", "col_1", "doc_1", 0, [math.inf] + [1.0] * (DIMENSION - 1), "x"), InvalidRequest),
    (Chunk("t1", "col#1", "doc_1", 0, [1.0] * DIMENSION, "x"), InvalidRequest),
    (Chunk("", "col_1", "doc_1", 0, [1.0] * DIMENSION, "x"), InvalidRequest),
    (Chunk("t1", "col_1", "doc_1", -1, [1.0] * DIMENSION, "x"), InvalidRequest),
    (Chunk("t1", "col_1", "doc_1", 0, [1.0] * DIMENSION, "é" * (TEXT_LIMIT // 2 + 1)), PayloadTooLarge),
])
def test_a_bad_chunk_is_refused_before_anything_is_written(index: VectorIndex, chunk: Chunk,
                                                           error: type[Exception]) -> None:
    good = _chunks("t1", "col_1", "doc_0", TEXTS[:1])

    with pytest.raises(error):
        index.put([*good, chunk])

    assert index.query(embedding(TEXTS[0], DIMENSION), tenant="t1", collection_id="col_1", top_k=5) == []


@pytest.mark.parametrize("arguments", [{"top_k": 0}, {"top_k": 101}, {"vector": [1.0] * 3}])
def test_a_bad_query_is_an_invalid_request(index: VectorIndex, arguments: dict[str, Any]) -> None:
    call: dict[str, Any] = {"vector": [1.0] * DIMENSION, "tenant": "t1", "collection_id": "col_1", "top_k": 5,
                            **arguments}

    with pytest.raises(InvalidRequest):
        index.query(call.pop("vector"), **call)


def test_a_filter_the_index_refuses_is_an_invalid_request_that_does_not_echo_it(index: VectorIndex) -> None:
    with pytest.raises(InvalidRequest) as refused:
        index.query([1.0] * DIMENSION, tenant="t1", collection_id="col_1", top_k=5, filter={"text": "secret words"})

    assert "secret" not in refused.value.message and refused.value.code == "invalid_vector_request"


def test_services_vectors_is_the_templates_index_and_the_reset_empties_it(services: Services,
                                                                           moto_world: Any) -> None:
    vectors = services.vectors
    assert vectors is services.vectors and vectors.dimension == DIMENSION
    vectors.put(_chunks("t1", "col_1", "doc_1", TEXTS))

    moto_world.reset()

    assert vectors.query(embedding(TEXTS[0], DIMENSION), tenant="t1", collection_id="col_1", top_k=5) == []
