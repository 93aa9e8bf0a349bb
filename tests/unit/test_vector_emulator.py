"""The local stack's QueryVectors (aijobs.local.emulator.query_vectors): S3 Vectors' documented semantics, exactly."""

from __future__ import annotations

import math
from typing import Any

import pytest

from aijobs.local.emulator import VectorQueryInvalid, matches_filter, query_vectors

STORED = [
    ("east", [1.0, 0.0, 0.0], {"tenant": "t1", "collection_id": "c1", "year": 2020, "genre": ["drama", "crime"]}),
    ("north", [0.0, 1.0, 0.0], {"tenant": "t1", "collection_id": "c1", "year": 2024, "genre": "comedy"}),
    ("west", [-1.0, 0.0, 0.0], {"tenant": "t1", "collection_id": "c2", "year": 2018, "draft": True}),
    ("other-east", [1.0, 0.01, 0.0], {"tenant": "t2", "collection_id": "c1", "year": 2020}),
]


def _keys(query: list[float], **kwargs: Any) -> list[str]:
    arguments: dict[str, Any] = {"metric": "cosine", "dimension": 3, "top_k": 10, **kwargs}
    return [key for key, _, _ in query_vectors(STORED, query, **arguments)]


def test_the_nearest_vector_comes_first_with_its_cosine_distance() -> None:
    found = query_vectors(STORED, [0.9, 0.1, 0.0], metric="cosine", dimension=3, top_k=2)

    assert [key for key, _, _ in found] == ["other-east", "east"]
    cosine = 0.9 / math.sqrt(0.82)  # the query against [1, 0, 0]
    assert found[1][1] == pytest.approx(1 - cosine, abs=1e-6)


def test_cosine_distance_runs_from_0_for_the_same_direction_to_2_for_the_opposite() -> None:
    found = {key: distance for key, distance, _ in
             query_vectors(STORED, [2.0, 0.0, 0.0], metric="cosine", dimension=3, top_k=4)}

    assert found["east"] == pytest.approx(0.0, abs=1e-6)  # the length does not count
    assert found["north"] == pytest.approx(1.0, abs=1e-6)
    assert found["west"] == pytest.approx(2.0, abs=1e-6)


def test_euclidean_distance_is_the_straight_line_one() -> None:
    found = query_vectors(STORED, [2.0, 0.0, 0.0], metric="euclidean", dimension=3, top_k=4)

    assert [key for key, _, _ in found][:2] == ["east", "other-east"]
    assert dict((k, d) for k, d, _ in found)["west"] == pytest.approx(3.0)


def test_top_k_bounds_the_results() -> None:
    assert _keys([1.0, 0.0, 0.0], top_k=1) == ["east"]


def test_the_tenant_filter_never_returns_another_tenants_vector_however_near() -> None:
    scope = {"$and": [{"tenant": {"$eq": "t1"}}, {"collection_id": {"$eq": "c1"}}]}

    assert _keys([1.0, 0.01, 0.0], filter_=scope) == ["east", "north"]  # other-east is the query itself


@pytest.mark.parametrize(("filter_", "keys"), [
    ({"year": 2020}, {"east", "other-east"}),  # a bare value is $eq
    ({"genre": {"$eq": "crime"}}, {"east"}),  # on a list: any element
    ({"year": {"$ne": 2020}}, {"north", "west"}),
    ({"genre": {"$ne": "crime"}}, {"north", "west", "other-east"}),  # missing keys match $ne
    ({"year": {"$gt": 2020}}, {"north"}),
    ({"year": {"$gte": 2020}}, {"east", "north", "other-east"}),
    ({"year": {"$lt": 2020}}, {"west"}),
    ({"year": {"$lte": 2020}}, {"east", "west", "other-east"}),
    ({"year": {"$gte": 2019, "$lt": 2024}}, {"east", "other-east"}),  # two operators on one key: both
    ({"genre": {"$in": ["comedy", "crime"]}}, {"east", "north"}),
    ({"genre": {"$nin": ["comedy", "crime"]}}, {"west", "other-east"}),
    ({"draft": {"$exists": True}}, {"west"}),
    ({"draft": {"$exists": False}}, {"east", "north", "other-east"}),
    ({"draft": True}, {"west"}),
    ({"year": True}, set()),  # a boolean is never a number
    ({"tenant": "t1", "year": 2020}, {"east"}),  # two keys: both
    ({"$or": [{"year": 2018}, {"genre": "comedy"}]}, {"west", "north"}),
    ({"$and": [{"tenant": "t1"}, {"$or": [{"year": {"$lt": 2019}}, {"year": {"$gt": 2023}}]}]}, {"west", "north"}),
])
def test_each_documented_filter_operator(filter_: dict[str, Any], keys: set[str]) -> None:
    assert set(_keys([1.0, 0.0, 0.0], filter_=filter_)) == keys
    assert {key for key, _, metadata in STORED if matches_filter(filter_, metadata)} == keys


@pytest.mark.parametrize(("arguments", "says"), [
    ({"top_k": 0}, "topK"),
    ({"top_k": 101}, "topK"),
    ({"query": [1.0, 0.0]}, "length 3"),
    ({"query": [0.0, 0.0, 0.0]}, "zero vector"),
    ({"query": [math.nan, 0.0, 1.0]}, "NaN"),
    ({"query": None}, "queryVector"),
    ({"filter_": {"text": "x"}}, "not filterable"),
    ({"filter_": {"$and": [{"tenant": "t1"}, {"text": {"$exists": True}}]}}, "not filterable"),
    ({"filter_": {"year": {"$regex": "x"}}}, "unknown operator"),
    ({"filter_": {"$not": {"year": 1}}}, "unknown operator"),
    ({"filter_": {"year": {"$gt": "2020"}}}, "$gt"),
    ({"filter_": {"year": {"$in": []}}}, "$in"),
    ({"filter_": {"$or": []}}, "$or"),
    ({"filter_": {}}, "non-empty"),
])
def test_what_s3_vectors_refuses_is_refused(arguments: dict[str, Any], says: str) -> None:
    call: dict[str, Any] = {"query": [1.0, 0.0, 0.0], "metric": "cosine", "dimension": 3, "top_k": 1,
                            "non_filterable": ["text"], **arguments}
    query = call.pop("query")

    with pytest.raises(VectorQueryInvalid, match=says.replace("$", r"\$")):
        query_vectors(STORED, query, **call)
