"""Issue 15's "done when", through `make run`'s stack over HTTP: a collection, a few documents indexed by their job,
a search with `min_score` that answers scored chunks, an answer job that cites them, and the query in the log."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.e2e.conftest import Stack

DOCUMENTS = [
    {"title": "refunds", "text": "Refunds are paid within 14 days. Ask support for a refund form.",
     "metadata": {"team": "billing"}},
    {"title": "holidays", "text": "Staff get 25 days of holiday a year. Book holidays in the HR tool.",
     "metadata": {"team": "hr"}},
    {"title": "laptops", "text": "Laptops are replaced every three years. IT orders them.", "metadata": {"team": "it"}},
]


def _ended(client: httpx.Client, job_id: str) -> dict[str, Any]:
    for _ in range(240):  # a bound, not a timing: the job ends in a second or two
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return dict(job)
        time.sleep(0.25)
    raise AssertionError(f"{job_id} did not end")


def test_a_user_indexes_documents_searches_gets_a_cited_answer_and_reads_the_log(stack: Stack) -> None:
    with stack.client() as client:
        cid = client.post("/v1/collections", json={"name": "handbook"}).json()["id"]
        added = client.post(f"/v1/collections/{cid}/documents", json={"documents": DOCUMENTS})
        assert added.status_code == 202, added.text
        assert _ended(client, added.json()["job_id"])["status"] == "completed"
        documents = {d["title"]: d for d in client.get(f"/v1/collections/{cid}/documents").json()["data"]}
        assert {d["status"] for d in documents.values()} == {"ready"}

        found = client.post(f"/v1/collections/{cid}/search", json={
            "query": "how many days of holiday do staff get", "top_k": 3, "min_score": 0.3})
        assert found.status_code == 200, found.text
        chunks = found.json()["data"]
        assert [c["document_id"] for c in chunks] == [documents["holidays"]["id"]]  # the others score under 0.3
        assert chunks[0]["score"] >= 0.3 and chunks[0]["metadata"] == {"team": "hr"}

        asked = client.post(f"/v1/collections/{cid}/search", json={"query": "when are refunds paid", "top_k": 2,
                                                                     "generate": True})
        assert asked.status_code == 202, asked.text
        job = _ended(client, asked.json()["job"]["id"])
        assert job["status"] == "completed", job["error"]
        answer = job["output"]
        assert answer["answer"].startswith("Refunds are paid within 14 days [1].")
        assert answer["citations"][0]["document_id"] == documents["refunds"]["id"]
        assert answer["chunks"][0]["chunk_id"] == answer["citations"][0]["chunk_id"]

        log = client.get(f"/v1/collections/{cid}/queries").json()["data"]
        assert [e["query"] for e in log] == ["when are refunds paid", "how many days of holiday do staff get"]
        assert log[0]["answer_job_id"] == job["id"] and log[1]["min_score"] == 0.3
        assert log[1]["chunks"] == [{"chunk_id": chunks[0]["chunk_id"], "score": chunks[0]["score"]}]
