"""Search with sources through the API on moto, the worker and the fake model: documents indexed by an ingest job,
searches whose nearest chunk is known (the fake model's embeddings are summed word vectors: texts sharing words
are near), `min_score` and metadata filters, answers that cite their chunks, the query log, deletion, tenant
isolation, and bad input as typed 4xx that writes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from aijobs.services import Services
from tests.integration.conftest import KEY_B, TENANT_A, api_client, installed_services, run_worker

B = {"Authorization": f"Bearer {KEY_B}"}
DOCUMENTS = [
    {"title": "cats", "text": "Cats purr when they are content. A cat sleeps most of the day on a warm mat.",
     "metadata": {"topic": "pets"}},
    {"title": "volcanoes", "text": "Volcanoes erupt molten lava and ash. Lava cools into basalt rock.",
     "metadata": {"topic": "geology"}},
    {"title": "tax", "text": "Quarterly tax returns are due at the end of each quarter. File them on time.",
     "metadata": {"topic": "finance"}},
]


def _collection(api: Any, **body: Any) -> str:
    response = api.post("/v1/collections", json={"name": "kb", **body})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _indexed(api: Any, services: Services, worker_handler: Any, documents: list[dict[str, Any]],
             **body: Any) -> tuple[str, list[dict[str, Any]]]:
    """A collection with ``documents``, indexed by their job (run by the worker)."""
    cid = _collection(api, **body)
    added = api.post(f"/v1/collections/{cid}/documents", json={"documents": documents})
    assert added.status_code == 202, added.text
    assert added.headers["Location"] == f"/v1/jobs/{added.json()['job_id']}"
    assert [d["status"] for d in added.json()["data"]] == ["queued"] * len(documents)
    assert run_worker(services, worker_handler)["batchItemFailures"] == []
    job = api.get(f"/v1/jobs/{added.json()['job_id']}").json()
    assert (job["status"], job["kind"]) == ("completed", "ingest"), job
    listed = api.get(f"/v1/collections/{cid}/documents", params={"limit": 100}).json()["data"]
    return cid, list(reversed(listed))  # oldest first: in the order added


def test_documents_are_indexed_and_a_search_finds_the_nearest_chunk_best_first(
        api: Any, services: Services, worker_handler: Any) -> None:
    cid, documents = _indexed(api, services, worker_handler, DOCUMENTS)
    assert [d["status"] for d in documents] == ["ready"] * 3 and all(d["chunk_count"] == 1 for d in documents)
    assert [d["title"] for d in documents] == ["cats", "volcanoes", "tax"]
    collection = api.get(f"/v1/collections/{cid}").json()
    assert (collection["document_count"], collection["chunk_count"]) == (3, 3)

    found = api.post(f"/v1/collections/{cid}/search", json={"query": "why does lava cool into rock", "top_k": 3})
    assert found.status_code == 200, found.text
    chunks = found.json()["data"]
    assert chunks[0]["document_id"] == documents[1]["id"]  # the volcano document is nearest
    assert chunks[0]["chunk_id"] == f"{documents[1]['id']}:0" and chunks[0]["metadata"] == {"topic": "geology"}
    assert chunks[0]["text"] == DOCUMENTS[1]["text"]
    scores = [c["score"] for c in chunks]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    assert found.json()["usage"]["input_tokens"] > 0 and found.json()["query_id"].startswith("qry_")

    same = api.post(f"/v1/collections/{cid}/search", json={"query": DOCUMENTS[2]["text"], "top_k": 1}).json()
    assert same["data"][0]["document_id"] == documents[2]["id"]
    assert same["data"][0]["score"] == pytest.approx(1, abs=1e-4)


def test_min_score_and_a_metadata_filter_leave_out_chunks(api: Any, services: Services, worker_handler: Any) -> None:
    cid, documents = _indexed(api, services, worker_handler, DOCUMENTS)
    query = {"query": "a cat on a warm mat", "top_k": 10}
    everything = api.post(f"/v1/collections/{cid}/search", json=query).json()["data"]
    assert len(everything) == 3
    best = everything[0]["score"]
    assert everything[0]["document_id"] == documents[0]["id"]
    above = api.post(f"/v1/collections/{cid}/search", json={**query, "min_score": (best + everything[1]["score"]) / 2})
    assert [c["document_id"] for c in above.json()["data"]] == [documents[0]["id"]]
    assert api.post(f"/v1/collections/{cid}/search", json={**query, "min_score": 1}).json()["data"] == []

    filtered = api.post(f"/v1/collections/{cid}/search", json={**query, "filter": {"topic": ["finance", "geology"]}})
    assert {c["document_id"] for c in filtered.json()["data"]} == {documents[1]["id"], documents[2]["id"]}
    one = api.post(f"/v1/collections/{cid}/search", json={**query, "filter": {"topic": "finance"}}).json()["data"]
    assert [c["document_id"] for c in one] == [documents[2]["id"]]


def test_generate_answers_in_a_job_that_cites_its_chunks_and_the_log_keeps_every_search(
        api: Any, services: Services, worker_handler: Any) -> None:
    cid, documents = _indexed(api, services, worker_handler, DOCUMENTS)
    asked = api.post(f"/v1/collections/{cid}/search",
                     json={"query": "when are quarterly tax returns due", "top_k": 2, "generate": True})
    assert asked.status_code == 202, asked.text
    job_id = asked.json()["job"]["id"]
    assert asked.headers["Location"] == f"/v1/jobs/{job_id}" and asked.json()["job"]["kind"] == "answer"
    assert asked.json()["data"][0]["document_id"] == documents[2]["id"]
    run_worker(services, worker_handler)
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "completed", job
    output = job["output"]
    assert output["answer"].startswith("Quarterly tax returns are due at the end of each quarter [1].")
    assert output["citations"][0] == {"marker": 1, "chunk_id": f"{documents[2]['id']}:0",
                                      "document_id": documents[2]["id"]}
    assert {c["chunk_id"] for c in output["citations"]} <= {c["chunk_id"] for c in output["chunks"]}
    assert [c["chunk_id"] for c in output["chunks"]] == [c["chunk_id"] for c in asked.json()["data"]]
    assert job["usage"]["output_tokens"] > 0 and job["cost_usd"] is not None

    api.post(f"/v1/collections/{cid}/search", json={"query": "lava", "top_k": 1, "min_score": 0.2})
    log = api.get(f"/v1/collections/{cid}/queries").json()["data"]
    assert [e["query"] for e in log] == ["lava", "when are quarterly tax returns due"]  # newest first
    latest, answered = log
    assert (latest["top_k"], latest["min_score"], latest["generate"], latest["answer_job_id"]) == (1, 0.2, False, None)
    assert latest["chunks"][0]["chunk_id"] == f"{documents[1]['id']}:0" and latest["latency_ms"] >= 0
    assert answered["answer_job_id"] == job_id and answered["id"] == asked.json()["query_id"]
    assert [c["chunk_id"] for c in answered["chunks"]] == [c["chunk_id"] for c in asked.json()["data"]]
    assert [c["score"] for c in answered["chunks"]] == [c["score"] for c in asked.json()["data"]]


def test_a_long_document_is_cut_into_overlapping_chunks_within_max_tokens(
        api: Any, services: Services, worker_handler: Any) -> None:
    from aijobs.tokens import count_tokens

    sentences = [f"Sentence number {n} talks about topic {n % 7} in some detail." for n in range(120)]
    cid, [document] = _indexed(api, services, worker_handler, [{"text": " ".join(sentences)}],
                               chunking={"max_tokens": 64, "overlap_tokens": 16})
    assert document["chunk_count"] > 10 and document["chars"] == len(" ".join(sentences))
    found = api.post(f"/v1/collections/{cid}/search", json={"query": "Sentence number 77 talks", "top_k": 100})
    chunks = found.json()["data"]
    assert len(chunks) == document["chunk_count"]
    assert all(count_tokens("text-embedding-3-small", c["text"]) <= 64 for c in chunks)
    assert "Sentence number 77 talks" in chunks[0]["text"]


def test_a_deleted_document_is_gone_from_results_and_counts(api: Any, services: Services, worker_handler: Any) -> None:
    cid, documents = _indexed(api, services, worker_handler, DOCUMENTS)
    assert api.delete(f"/v1/collections/{cid}/documents/{documents[1]['id']}").status_code == 204
    found = api.post(f"/v1/collections/{cid}/search", json={"query": "lava and basalt", "top_k": 10}).json()["data"]
    assert documents[1]["id"] not in {c["document_id"] for c in found} and len(found) == 2
    collection = api.get(f"/v1/collections/{cid}").json()
    assert (collection["document_count"], collection["chunk_count"]) == (2, 2)
    gone = api.get(f"/v1/collections/{cid}/documents/{documents[1]['id']}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "document_not_found"
    assert api.delete(f"/v1/collections/{cid}/documents/{documents[1]['id']}").status_code == 404

    assert api.delete(f"/v1/collections/{cid}").status_code == 204  # its chunks leave the index with it
    vector = [1.0] * services.vectors.dimension
    assert services.vectors.query(vector, tenant=TENANT_A, collection_id=cid, top_k=10) == []


def test_a_document_deleted_before_or_while_it_is_indexed_leaves_no_chunks(
        api: Any, services: Services, worker_handler: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    cid = _collection(api)
    added = api.post(f"/v1/collections/{cid}/documents", json={"documents": DOCUMENTS[:2]}).json()
    early, late = (d["id"] for d in added["data"])
    assert api.delete(f"/v1/collections/{cid}/documents/{early}").status_code == 204  # before its job runs
    put = services.vectors.put

    def put_then_deleted(chunks: Any) -> int:  # the other is deleted after its chunks are put, before it is marked
        stored = put(chunks)
        services.collections.delete_document(tenant=TENANT_A, collection_id=cid, document_id=late)
        return stored

    monkeypatch.setattr(services.vectors, "put", put_then_deleted)
    run_worker(services, worker_handler)
    job = api.get(f"/v1/jobs/{added['job_id']}").json()
    assert job["status"] == "completed"
    assert [(d["id"], d["status"], d["chunk_count"]) for d in job["output"]["documents"]] == [
        (early, "deleted", 0), (late, "deleted", 0)]
    vector = [1.0] * services.vectors.dimension
    assert services.vectors.query(vector, tenant=TENANT_A, collection_id=cid, top_k=10) == []
    assert api.get(f"/v1/collections/{cid}").json()["document_count"] == 0


def test_another_tenant_sees_no_collection_document_search_or_log(
        api: Any, services: Services, worker_handler: Any) -> None:
    cid, documents = _indexed(api, services, worker_handler, DOCUMENTS)
    api.post(f"/v1/collections/{cid}/search", json={"query": "cats"})
    document = f"/v1/collections/{cid}/documents/{documents[0]['id']}"
    for response in (api.get(f"/v1/collections/{cid}/documents", headers=B), api.get(document, headers=B),
                     api.delete(document, headers=B), api.get(f"/v1/collections/{cid}/queries", headers=B),
                     api.post(f"/v1/collections/{cid}/search", json={"query": "cats"}, headers=B),
                     api.post(f"/v1/collections/{cid}/documents", json={"documents": DOCUMENTS}, headers=B)):
        assert response.status_code == 404 and response.json()["error"]["code"] == "collection_not_found"
    own = api.post("/v1/collections", json={"name": "b"}, headers=B).json()["id"]
    assert api.post(f"/v1/collections/{own}/search", json={"query": DOCUMENTS[0]["text"]},
                    headers=B).json()["data"] == []  # A's chunks are not in B's collection
    assert len(api.get(f"/v1/collections/{cid}/queries").json()["data"]) == 1  # B's search is not in A's log


def test_deleting_a_tenant_deletes_its_chunks(api: Any, services: Services, worker_handler: Any) -> None:
    cid, _ = _indexed(api, services, worker_handler, DOCUMENTS)
    services.tenants.delete_tenant(TENANT_A, actor="operator")
    vector = [1.0] * services.vectors.dimension
    assert services.vectors.query(vector, tenant=TENANT_A, collection_id=cid, top_k=10) == []


@pytest.mark.parametrize(("path", "body", "code"), [
    ("search", {"query": ""}, "invalid_fields"),
    ("search", {"query": "   "}, "invalid_fields"),
    ("search", {"query": "x", "top_k": 1000}, "invalid_fields"),
    ("search", {"query": "x", "top_k": 0}, "invalid_fields"),
    ("search", {"query": "x", "min_score": 1.5}, "invalid_fields"),
    ("search", {"query": "x", "filter": {"bad key": "v"}}, "invalid_fields"),
    ("search", {"query": "x", "model": "fake-model"}, "invalid_fields"),
    ("search", {"query": "x" * 8001}, "invalid_fields"),
    ("documents", {"documents": []}, "invalid_fields"),
    ("documents", {"documents": [{"text": "a", "s3": {"bucket": "docs-bucket", "key": "a.txt"}}]}, "invalid_fields"),
    ("documents", {"documents": [{"text": " \n "}]}, "invalid_fields"),
    ("documents", {"documents": [{"text": "a", "metadata": {"k": "v" * 300}}]}, "invalid_fields"),
    ("documents", {"documents": [{"s3": {"bucket": "not-listed", "key": "a.txt"}}]}, "source_not_allowed"),
    ("documents", {"documents": [{"text": "a"}] * 101}, "invalid_fields"),
])
def test_bad_input_is_a_typed_4xx_and_writes_nothing(api: Any, path: str, body: dict[str, Any], code: str) -> None:
    cid = _collection(api)
    response = api.post(f"/v1/collections/{cid}/{path}", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code
    assert api.get(f"/v1/collections/{cid}/documents").json()["data"] == []
    assert api.get(f"/v1/collections/{cid}/queries").json()["data"] == []
    assert api.get("/v1/jobs").json()["data"] == []


def test_an_unknown_collection_is_404_and_ingest_jobs_cannot_be_submitted(api: Any) -> None:
    for response in (api.post("/v1/collections/col_nope/search", json={"query": "x"}),
                     api.post("/v1/collections/col_nope/documents", json={"documents": [{"text": "a"}]}),
                     api.get("/v1/collections/col_nope/queries")):
        assert response.status_code == 404 and response.json()["error"]["code"] == "collection_not_found"
    crafted = api.post("/v1/jobs", json={"kind": "ingest", "model": "m",
                                         "collection": {"collection_id": "col_x", "document_ids": ["doc_x"]}})
    assert crafted.status_code == 422 and crafted.json()["error"]["code"] == "kind_not_submittable"
    assert api.post("/v1/jobs", json={"kind": "answer", "input": "q"}).status_code == 422
    assert api.get("/v1/jobs").json()["data"] == []


def test_documents_from_s3_are_read_where_allowed_and_an_unreadable_one_fails_alone(
        aws: Any, fake_model: Any, worker_handler: Any) -> None:
    session, _ = aws
    s3 = session.client("s3")
    s3.create_bucket(Bucket="docs-bucket")
    s3.put_object(Bucket="docs-bucket", Key="ok.txt", Body=DOCUMENTS[0]["text"].encode())
    s3.put_object(Bucket="docs-bucket", Key="binary.bin", Body=b"\xff\xfe\x00garbage")
    with installed_services(aws, fake_model, document_source_buckets="docs-bucket") as svc, api_client() as api:
        cid = _collection(api)
        added = api.post(f"/v1/collections/{cid}/documents", json={"documents": [
            {"s3": {"bucket": "docs-bucket", "key": "ok.txt"}}, {"s3": {"bucket": "docs-bucket", "key": "binary.bin"}},
            {"s3": {"bucket": "docs-bucket", "key": "missing.txt"}}]}).json()
        run_worker(svc, worker_handler)
        statuses = {d["id"]: d for d in api.get(f"/v1/collections/{cid}/documents").json()["data"]}
        ok, binary, missing = (statuses[d["id"]] for d in added["data"])
        assert (ok["status"], ok["source"], ok["chars"]) == ("ready", "s3", len(DOCUMENTS[0]["text"]))
        assert (binary["status"], binary["error"]["code"]) == ("failed", "document_not_text")
        assert (missing["status"], missing["error"]["code"]) == ("failed", "document_unreadable")
        found = api.post(f"/v1/collections/{cid}/search", json={"query": "cats purr"}).json()["data"]
        assert [c["document_id"] for c in found] == [ok["id"]]


def test_the_chunks_of_an_attempt_that_died_before_marking_its_document_are_deleted_with_it(
        api: Any, services: Services, worker_handler: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    cid = _collection(api)
    added = api.post(f"/v1/collections/{cid}/documents", json={"documents": DOCUMENTS[:1]}).json()

    def dies(*_: Any, **__: Any) -> bool:
        raise RuntimeError("the worker died here")

    monkeypatch.setattr(services.collections, "mark_indexed", dies)
    run_worker(services, worker_handler)  # the chunks are put, the document is not marked: it stays queued
    vector = [1.0] * services.vectors.dimension
    assert len(services.vectors.query(vector, tenant=TENANT_A, collection_id=cid, top_k=10)) == 1
    document = added["data"][0]["id"]
    assert api.delete(f"/v1/collections/{cid}/documents/{document}").status_code == 204
    assert services.vectors.query(vector, tenant=TENANT_A, collection_id=cid, top_k=10) == []
