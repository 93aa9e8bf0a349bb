"""Collections (search with sources) through the API on moto: create, read, list, delete, tenant isolation, and bad
input as typed 4xx that writes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from aijobs.services import Services
from tests.integration.conftest import KEY_B

B = {"Authorization": f"Bearer {KEY_B}"}


def _create(api: Any, **body: Any) -> dict[str, Any]:
    response = api.post("/v1/collections", json={"name": "handbook", **body})
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"/v1/collections/{response.json()['id']}"
    return dict(response.json())


def test_a_collection_is_made_with_defaults_read_listed_and_deleted(api: Any, services: Services) -> None:
    made = _create(api, metadata={"team": "support"})
    assert made["id"].startswith("col_") and made["object"] == "collection"
    assert made["embedding_model"] == services.settings.embedding_model
    assert made["chunking"] == {"max_tokens": 512, "overlap_tokens": 64}
    assert (made["document_count"], made["chunk_count"], made["metadata"]) == (0, 0, {"team": "support"})
    assert api.get(f"/v1/collections/{made['id']}").json() == made

    other = _create(api, name="faq", embedding_model="text-embedding-3-large",
                    chunking={"max_tokens": 256, "overlap_tokens": 0})
    assert (other["embedding_model"], other["chunking"]["max_tokens"]) == ("text-embedding-3-large", 256)
    first = api.get("/v1/collections", params={"limit": 1}).json()
    assert [c["id"] for c in first["data"]] == [other["id"]]  # newest first
    rest = api.get("/v1/collections", params={"limit": 1, "cursor": first["next_cursor"]}).json()
    assert [c["id"] for c in rest["data"]] == [made["id"]]

    assert api.delete(f"/v1/collections/{made['id']}").status_code == 204
    gone = api.get(f"/v1/collections/{made['id']}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "collection_not_found"
    assert api.delete(f"/v1/collections/{made['id']}").status_code == 404
    assert [c["id"] for c in api.get("/v1/collections").json()["data"]] == [other["id"]]


def test_a_keyed_create_replays_its_answer_and_makes_one(api: Any) -> None:
    headers = {"Idempotency-Key": "collection-1"}
    first = api.post("/v1/collections", json={"name": "once"}, headers=headers)
    again = api.post("/v1/collections", json={"name": "once"}, headers=headers)
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert len(api.get("/v1/collections").json()["data"]) == 1


def test_another_tenants_collection_is_404_and_never_listed(api: Any) -> None:
    made = _create(api)
    for response in (api.get(f"/v1/collections/{made['id']}", headers=B),
                     api.delete(f"/v1/collections/{made['id']}", headers=B)):
        assert response.status_code == 404 and response.json()["error"]["code"] == "collection_not_found"
    assert api.get("/v1/collections", headers=B).json()["data"] == []
    assert api.get(f"/v1/collections/{made['id']}").status_code == 200  # still there for its tenant


@pytest.mark.parametrize(("body", "where"), [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "x", "chunking": {"max_tokens": 32}}, "max_tokens"),
    ({"name": "x", "chunking": {"max_tokens": 128, "overlap_tokens": 64}}, "overlap_tokens"),
    ({"name": "x", "embedding_model": "has space"}, "embedding_model"),
    ({"name": "x", "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ({"name": "x", "colour": "blue"}, "colour"),
])
def test_bad_input_is_a_typed_422_that_writes_nothing(api: Any, body: dict[str, Any], where: str) -> None:
    response = api.post("/v1/collections", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request" and where in error["message"]
    assert api.get("/v1/collections").json()["data"] == []


def test_an_id_that_is_not_a_collections_is_404(api: Any) -> None:
    for collection_id in ("pmpt_01K00000000000000000000000", "col_nope", "x" * 64):
        assert api.get(f"/v1/collections/{collection_id}").status_code == 404
