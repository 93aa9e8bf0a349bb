"""Issue 13's "done when" for the kinds, through `make run`'s stack over HTTP: a schema-checked extraction job, a
1,000-text embeddings job and an image job, their parsed object, vector file and PNG fetched by URL."""

from __future__ import annotations

import json

import httpx

from aijobs.local import fake_kinds
from tests.e2e.conftest import Stack

EXTRACTION = {"type": "json_schema", "json_schema": {"name": "contact", "strict": True, "schema": {
    "type": "object", "additionalProperties": False, "required": ["name", "email"],
    "properties": {"name": {"type": "string"}, "email": {"type": "string"}}}}}


def _done(client: httpx.Client, body: dict[str, object]) -> dict[str, object]:
    """Submit and wait for the end (Prefer: wait, then polls)."""
    job = client.post("/v1/jobs", json=body, headers={"Prefer": "wait=15"}).json()
    for _ in range(60):
        if job["status"] in ("completed", "failed", "cancelled"):
            return dict(job)
        job = client.get(f"/v1/jobs/{job['id']}", headers={"Prefer": "wait=5"}).json()
    raise AssertionError(f"{job['id']} did not finish")


def test_an_extraction_job_answers_a_parsed_object(stack: Stack) -> None:
    with stack.client() as client:
        job = _done(client, {"input": "Ada Lovelace <ada@example.com>", "response_format": EXTRACTION})
    assert job["status"] == "completed"
    parsed = job["output"]["parsed"]  # type: ignore[index]
    assert set(parsed) == {"name", "email"} and parsed == json.loads(job["output"]["text"])  # type: ignore[index]


def test_an_embeddings_job_of_1000_texts_answers_a_vector_file_by_url(stack: Stack) -> None:
    texts = [f"document {i}: the quick brown fox" for i in range(1000)]
    with stack.client() as client:
        job = _done(client, {"kind": "embedding", "model": "text-embedding-3-small", "input": texts})
    assert job["status"] == "completed", job["error"]
    output = job["output"]
    assert output["count"] == 1000 and output["format"] == "jsonl"  # type: ignore[index]
    file = httpx.get(output["url"], timeout=30)  # type: ignore[index]  # presigned: no API key
    assert file.status_code == 200
    vectors = [json.loads(line) for line in file.text.splitlines()]
    assert len(vectors) == 1000 and len(vectors[999]["embedding"]) == output["dimensions"]  # type: ignore[index]
    assert vectors[999]["embedding"] == fake_kinds.embedding(texts[999])
    assert job["cost_usd"] and job["price_known"] is True


def test_an_image_job_answers_a_png_by_url(stack: Stack) -> None:
    with stack.client() as client:
        job = _done(client, {"kind": "image", "input": "a lighthouse at dusk", "size": "512x512"})
    assert job["status"] == "completed", job["error"]
    png = httpx.get(job["output"]["images"][0]["url"], timeout=30)  # type: ignore[index]
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert png.content == fake_kinds.png("0:a lighthouse at dusk", 512, 512)
    assert job["usage"]["images"] == 1 and job["cost_usd"] == 0.04  # type: ignore[index]
