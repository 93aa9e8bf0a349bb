"""aijobs.vectors.VectorIndex's requests to S3 Vectors, with a recording fake client (moto: tests/integration)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from aijobs.errors import AijobsError, InvalidRequest, ServiceUnavailable
from aijobs.vectors import Chunk, VectorIndex

ARN = "arn:aws:s3vectors:us-east-1:123456789012:bucket/b/index/i"


class RecordingS3Vectors:
    """Answers every call as S3 Vectors would with nothing found, and keeps what it was asked."""

    def __init__(self, error: str | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.error = error

    def __getattr__(self, operation: str) -> Any:
        def call(**params: Any) -> dict[str, Any]:
            self.calls.append((operation, params))
            if self.error:
                raise ClientError({"Error": {"Code": self.error, "Message": "its words"}}, operation)
            return {"vectors": [{"key": "t1#c#d#0", "distance": 1.25, "metadata": {"document_id": "d", "chunk": 0}}]}
        return call


def _chunk(n: int, text: str = "x", dimension: int = 4) -> Chunk:
    return Chunk("t1", "col_1", "doc_1", n, [1.0] * dimension, text)


def test_chunks_go_in_calls_of_at_most_500_vectors() -> None:
    client = RecordingS3Vectors()

    VectorIndex(client=client, index_arn=ARN, dimension=4).put(_chunk(n) for n in range(1001))

    assert [len(params["vectors"]) for _, params in client.calls] == [500, 500, 1]
    assert client.calls[0][1]["vectors"][1]["key"] == "t1#col_1#doc_1#1"


def test_long_texts_make_smaller_calls_under_the_20_mib_a_request_may_carry() -> None:
    client = RecordingS3Vectors()

    VectorIndex(client=client, index_arn=ARN, dimension=1536).put(
        _chunk(n, "a" * 38_000, dimension=1536) for n in range(500))

    assert sum(len(params["vectors"]) for _, params in client.calls) == 500 and len(client.calls) == 2
    assert all(len(json.dumps(params).encode()) < 20 * 1024 * 1024 for _, params in client.calls)


def test_a_query_always_filters_on_its_tenant_and_collection_and_adds_the_callers_filter() -> None:
    client = RecordingS3Vectors()
    index = VectorIndex(client=client, index_arn=ARN, dimension=4)

    index.query([1.0] * 4, tenant="t1", collection_id="col_1", top_k=3)
    index.query([1.0] * 4, tenant="t1", collection_id="col_1", top_k=3, filter={"tenant": "t2"})

    scope = [{"tenant": {"$eq": "t1"}}, {"collection_id": {"$eq": "col_1"}}]
    assert client.calls[0][1]["filter"] == {"$and": scope}
    assert client.calls[1][1]["filter"] == {"$and": [*scope, {"tenant": "t2"}]}
    assert client.calls[0][1]["returnMetadata"] is True and client.calls[0][1]["returnDistance"] is True


def test_the_score_is_one_minus_the_cosine_distance() -> None:
    matches = VectorIndex(client=RecordingS3Vectors(), index_arn=ARN, dimension=4).query(
        [1.0] * 4, tenant="t1", collection_id="c", top_k=1)

    assert matches[0].score == pytest.approx(-0.25) and matches[0].document_id == "d" and matches[0].chunk == 0


@pytest.mark.parametrize(("code", "error"), [
    ("ValidationException", InvalidRequest),
    ("TooManyRequestsException", ServiceUnavailable),
    ("ServiceUnavailableException", ServiceUnavailable),
    ("AccessDeniedException", AijobsError),
    ("NotFoundException", AijobsError),
])
def test_s3_vectors_errors_become_ours_without_their_message(code: str, error: type[AijobsError]) -> None:
    index = VectorIndex(client=RecordingS3Vectors(error=code), index_arn=ARN, dimension=4)

    with pytest.raises(error) as raised:
        index.delete_document("t1", "col_1", "doc_1", 2)

    assert type(raised.value) is error and "its words" not in raised.value.message


def test_deleting_a_document_of_1200_chunks_names_each_key_once_in_calls_of_500() -> None:
    client = RecordingS3Vectors()

    VectorIndex(client=client, index_arn=ARN, dimension=4).delete_document("t1", "col_1", "doc_1", 1200)

    keys = [key for _, params in client.calls for key in params["keys"]]
    assert [len(params["keys"]) for _, params in client.calls] == [500, 500, 200]
    assert keys == [f"t1#col_1#doc_1#{n}" for n in range(1200)]


def test_a_paged_answer_is_read_to_its_end() -> None:
    client = RecordingS3Vectors()
    pages = iter([{"vectors": [{"key": "a", "distance": 0.0}], "nextToken": "2"},
                  {"vectors": [{"key": "b", "distance": 0.5}]}])
    client.query_vectors = lambda **params: (client.calls.append(("query_vectors", params)), next(pages))[1]

    matches = VectorIndex(client=client, index_arn=ARN, dimension=4).query([1.0] * 4, tenant="t1", collection_id="c",
                                                                          top_k=2)

    assert [(m.key, m.score) for m in matches] == [("a", 1.0), ("b", 0.5)]
    assert "nextToken" not in client.calls[0][1] and client.calls[1][1]["nextToken"] == "2"
