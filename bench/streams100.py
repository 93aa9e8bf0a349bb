"""100 concurrent streamed jobs through `make run`'s stack (issue 16): does any stream stall?

The stack runs as a user starts it (a subprocess), with room for 100 jobs at once: 10 worker batches a lane
(AIJOBS_LOCAL_WORKER_CONCURRENCY) and a tenant limit of 200 running jobs. 100 jobs are submitted with
``stream: true``, each making TOKENS tokens TOKEN_MS apart in the fake model; 100 SSE clients then read their
streams at once. A stall is the longest gap a client waited between two things its stream sent it (the stream's
opening counts as the first): events, and comments, which a reader of the stream sees too (the `: queued` a
queued job's stream sends every second, the heartbeat); the figure is the longest over the 100, with how many
streams waited over 2 s. So that a comment cannot hide a running job's silence, the longest gap between two events
once a job runs (from its `in_progress` to its final event: deltas only come from its model) is reported apart,
and so is the longest a job waited to start (the worker's batches all busy: no event is due then).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass
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
        reads = asyncio.run(_read_all(urls["api"], headers, ids))
    stalls = sorted(r.longest for r in reads)
    outcomes = [r.outcome for r in reads]
    return {"streams": STREAMS, "tokens": TOKENS, "token_ms": TOKEN_MS,
            "longest_stall_s": round(stalls[-1], 2), "median_longest_gap_s": round(statistics.median(stalls), 2),
            "streams_over_2s": sum(s > STALL_S for s in stalls),
            "longest_running_event_gap_s": round(max(r.running_gap for r in reads), 2),
            "running_gaps_over_2s": sum(r.running_gap > STALL_S for r in reads),
            "longest_wait_to_start_s": round(max(r.queued for r in reads), 2),
            "completed": outcomes.count("completed"), "outcomes": {o: outcomes.count(o) for o in set(outcomes)}}


@dataclass
class _Read:
    outcome: str = "none"  # the final event's name
    longest: float = 0.0  # the longest wait between two things the stream sent (events or comments)
    running_gap: float = 0.0  # the longest wait between two events from in_progress on
    queued: float = 0.0  # from the queued status to in_progress


async def _read_all(url: str, headers: dict[str, str], ids: list[str]) -> list[_Read]:
    import httpx

    limits = httpx.Limits(max_connections=STREAMS + 10, max_keepalive_connections=STREAMS + 10)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=TIMEOUT_S, limits=limits) as client:
        return list(await asyncio.gather(*(_read(client, job_id) for job_id in ids)))


async def _read(client: Any, job_id: str) -> _Read:
    """One stream to its end, as its reader sees it: every event (its data line) and every comment line."""
    read, event = _Read(), ""
    last = time.monotonic()
    queued_at = running_since = None
    async with client.stream("GET", f"/v1/jobs/{job_id}/stream") as response:
        async for line in response.aiter_lines():
            now = time.monotonic()
            if line.startswith(":"):
                read.longest, last = max(read.longest, now - last), now
            elif line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                read.longest, last = max(read.longest, now - last), now
                data = json.loads(line.removeprefix("data:"))
                if running_since is not None:
                    read.running_gap, running_since = max(read.running_gap, now - running_since), now
                if event == "status" and data["status"] == "queued":
                    queued_at = now
                elif event == "status" and running_since is None:
                    running_since = now
                    read.queued = now - (queued_at or now)
                if event in ("completed", "failed", "cancelled"):
                    read.outcome = event
    return read


def render(s: dict[str, Any]) -> list[str]:
    return [
        f"100 concurrent streams (make run's stack in a subprocess, room for 100 running jobs): {s['streams']} jobs "
        f"of {s['tokens']} tokens {s['token_ms']} ms apart, read as SSE at once",
        f"  longest stall {s['longest_stall_s']} s (median of each stream's longest gap {s['median_longest_gap_s']} "
        f"s); {s['streams_over_2s']} streams waited over 2 s; outcomes {s['outcomes']}",
        f"  once running, the longest gap between two events {s['longest_running_event_gap_s']} s "
        f"({s['running_gaps_over_2s']} streams over 2 s); the longest wait to start {s['longest_wait_to_start_s']} s",
    ]
