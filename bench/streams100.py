"""100 concurrent streamed jobs through `make run`'s stack (issue 16): does any stream stall?

The stack runs as a user starts it (a subprocess), with room for 100 jobs at once: 10 worker batches a lane
(AIJOBS_LOCAL_WORKER_CONCURRENCY) and a tenant limit of 200 running jobs. 100 jobs are submitted with
``stream: true``, each making TOKENS tokens TOKEN_MS apart in the fake model; 100 SSE clients then read their
streams at once. A stall is the longest gap a client waited between two events of its stream (the stream's
opening counts as the first); the figure is the longest over the 100, with how many streams waited over 2 s.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

STREAMS = 100
TOKENS = 60
TOKEN_MS = 50
STALL_S = 2.0
TIMEOUT_S = 120


def measure() -> dict[str, Any]:
    import httpx

    from bench.throughput import KEY, stack_process

    with stack_process(AIJOBS_LOCAL_WORKER_CONCURRENCY="10", AIJOBS_LIMIT_CONCURRENT_JOBS="200") as urls:
        headers = {"Authorization": f"Bearer {KEY}"}
        with httpx.Client(base_url=urls["api"], headers=headers, timeout=60) as client:
            answer = client.post("/v1/jobs/batch", json={"jobs": [
                {"input": f"[[tokens={TOKENS}]] [[token_ms={TOKEN_MS}]] stream {n}", "stream": True}
                for n in range(STREAMS)]})
            if answer.status_code != 202:
                raise RuntimeError(f"the batch answered {answer.status_code}: {answer.text[:500]}")
            ids = [item["id"] for item in answer.json()["data"]]
        gaps = asyncio.run(_read_all(urls["api"], headers, ids))
    stalls = sorted(gaps.values())
    outcomes = [outcome for _, outcome in gaps]
    return {"streams": STREAMS, "tokens": TOKENS, "token_ms": TOKEN_MS,
            "longest_stall_s": round(stalls[-1], 2), "median_longest_gap_s": round(statistics.median(stalls), 2),
            "streams_over_2s": sum(s > STALL_S for s in stalls),
            "completed": outcomes.count("completed"), "outcomes": {o: outcomes.count(o) for o in set(outcomes)}}


async def _read_all(url: str, headers: dict[str, str], ids: list[str]) -> dict[tuple[str, str], float]:
    import httpx

    limits = httpx.Limits(max_connections=STREAMS + 10, max_keepalive_connections=STREAMS + 10)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=TIMEOUT_S, limits=limits) as client:
        results = await asyncio.gather(*(_read(client, job_id) for job_id in ids))
    return dict(results)


async def _read(client: Any, job_id: str) -> tuple[tuple[str, str], float]:
    """One stream to its end: (job id, the final event's name) and the longest wait between two events."""
    last = time.monotonic()
    longest, outcome, event = 0.0, "none", ""
    async with client.stream("GET", f"/v1/jobs/{job_id}/stream") as response:
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                now = time.monotonic()
                longest, last = max(longest, now - last), now
                if event in ("completed", "failed", "cancelled"):
                    outcome = event
                    json.loads(line.removeprefix("data:"))
    return (job_id, outcome), longest


def render(s: dict[str, Any]) -> list[str]:
    return [
        f"100 concurrent streams (make run's stack in a subprocess, room for 100 running jobs): {s['streams']} jobs "
        f"of {s['tokens']} tokens {s['token_ms']} ms apart, read as SSE at once",
        f"  longest stall {s['longest_stall_s']} s (median of each stream's longest gap {s['median_longest_gap_s']} "
        f"s); {s['streams_over_2s']} streams waited over 2 s; outcomes {s['outcomes']}",
    ]
