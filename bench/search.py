"""Search with sources (issue 15): indexing a collection's documents through the worker, and searching it.

In-process: moto (S3 Vectors' QueryVectors by the local emulator: an exact search, so its time is not S3 Vectors'),
the fake model's embeddings, the worker handler invoked as its event source mapping would. DOCUMENTS documents of
about WORDS words each are added in one request and indexed by one ingest job (chunked by semchunk at 512 tokens,
64 repeated; embedded at the template's 1,536 dimensions); then SEARCHES searches of top_k 5, each embedding its
query, querying the index and writing its query log entry. AWS requests are counted with botocore hooks.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

DOCUMENTS = 20
WORDS = 1500
SEARCHES = 50
TENANT = "bench-search"
VOCABULARY = ["lava", "basalt", "magma", "crater", "eruption", "ash", "tax", "return", "quarter", "filing", "invoice",
              "cat", "purr", "whisker", "mat", "kitten", "engine", "piston", "torque", "gear", "shaft", "river",
              "delta", "silt", "flood", "basin", "orbit", "comet", "planet", "moon", "tide"]


def _document(rng: random.Random) -> str:
    sentences = []
    for _ in range(WORDS // 10):
        words = rng.choices(VOCABULARY, k=10)
        sentences.append(" ".join(words).capitalize() + ".")
    return " ".join(sentences)


def measure() -> dict[str, Any]:
    from aijobs.models.collections import CollectionRequest, DocumentsRequest, SearchRequest
    from bench.lifecycle import local_stack, receive, run_worker_only
    from bench.recorder import summarize

    rng = random.Random(15)
    with local_stack() as stack:
        collections = stack.services.collections
        collection = collections.create(tenant=TENANT, request=CollectionRequest(name="bench"))
        texts = [_document(rng) for _ in range(DOCUMENTS)]
        job, _ = collections.add_documents(tenant=TENANT, collection_id=collection.id, request=DocumentsRequest(
            documents=[{"text": text} for text in texts]))
        messages = receive(stack, 1)
        stack.recorder.take()
        stack.recorder.phase = "ingest"
        seconds = run_worker_only(stack, messages)
        ingest = summarize(stack.recorder.take())
        stack.esm_sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
        done = stack.services.store.get_job(job.id)
        if done is None or done.status.value != "completed":
            raise RuntimeError(f"the ingest job did not complete: {done.error if done else 'gone'}")
        chunks = collections.get(tenant=TENANT, collection_id=collection.id).chunk_count

        loop = asyncio.get_event_loop()  # the thread's, set by local_stack (as in a Lambda process)
        times, found = [], 0
        stack.recorder.phase = "search"
        for _ in range(SEARCHES):
            query = " ".join(rng.choices(VOCABULARY, k=6))
            started = time.perf_counter()
            result = loop.run_until_complete(collections.search(
                tenant=TENANT, collection_id=collection.id, request=SearchRequest(query=query, top_k=5)))
            times.append((time.perf_counter() - started) * 1000)
            found += len(result.chunks)
        searches = summarize(stack.recorder.take())
        stack.recorder.phase = None
    times.sort()
    return {"documents": DOCUMENTS, "chars": sum(map(len, texts)), "chunks": chunks,
            "ingest_worker_s": round(seconds, 2), "chunks_per_s": round(chunks / seconds, 1),
            "ingest_aws_requests": ingest["aws_requests"], "ingest_wru": ingest["wru"],
            "ingest_cost_usd": float(done.cost_usd or 0),
            "searches": SEARCHES, "search_p50_ms": round(times[len(times) // 2], 1),
            "search_p95_ms": round(times[int(len(times) * 0.95)], 1),
            "search_aws_requests": searches["aws_requests"] / SEARCHES, "search_wru": searches["wru"] / SEARCHES,
            "chunks_found_per_search": found / SEARCHES}


def render(s: dict[str, Any]) -> list[str]:
    return [
        "Search with sources (in-process: moto, the local QueryVectors emulator, the fake model's embeddings)",
        f"  ingest: {s['documents']} documents, {s['chars']:,} characters -> {s['chunks']} chunks in "
        f"{s['ingest_worker_s']:.2f} s through the worker ({s['chunks_per_s']} chunks/s), {s['ingest_aws_requests']} "
        f"AWS requests, {s['ingest_wru']} WRU, ${s['ingest_cost_usd']:.6f}",
        f"  search (top_k 5, {s['searches']} runs): p50 {s['search_p50_ms']} ms, p95 {s['search_p95_ms']} ms, "
        f"{s['search_aws_requests']:g} AWS requests and {s['search_wru']:g} WRU each (the query log entry, the "
        "usage counter)",
    ]
