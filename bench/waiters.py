"""Another tenant's requests while 60 requests wait (`Prefer: wait`): the p50 of its GETs, as a ratio of the p50
without the waiters. The API is served by uvicorn on 127.0.0.1 over moto, as `make run` serves it."""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

WAITERS = 60
SAMPLES = 40
WAIT_S = 10


def _p50_ms(client: httpx.Client, path: str) -> float:
    times = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        client.get(path).raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure() -> dict[str, Any]:
    from aijobs.api import create_app
    from aijobs.local.server_process import UvicornThread
    from aijobs.local.stack import free_port
    from bench.lifecycle import local_stack

    with local_stack() as stack:
        key_a = stack.services.tenants.add_api_key("bench-a")
        key_b = stack.services.tenants.add_api_key("bench-b")
        server = UvicornThread(create_app(), free_port())
        server.start()
        try:
            with (httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key_b}"}) as b,
                  httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key_a}"},
                               timeout=WAIT_S + 20, limits=httpx.Limits(max_connections=WAITERS)) as a):
                job = b.post("/v1/jobs", json={"input": "another tenant's job"}).json()["id"]
                path = f"/v1/jobs/{job}"
                _p50_ms(b, path)  # warm
                alone = _p50_ms(b, path)
                with ThreadPoolExecutor(WAITERS) as pool:  # no worker runs: each waits its WAIT_S out
                    waiting = [pool.submit(a.post, "/v1/jobs", json={"input": f"waiter {i}"},
                                           headers={"Prefer": f"wait={WAIT_S}"}) for i in range(WAITERS)]
                    deadline = time.monotonic() + WAIT_S / 2
                    while stack.services.job_waits.waiting < WAITERS and time.monotonic() < deadline:
                        time.sleep(0.01)
                    parked = stack.services.job_waits.waiting
                    under_waiters = _p50_ms(b, path)
                    still = sum(not w.done() for w in waiting)
                    answers = [w.result().status_code for w in waiting]
        finally:
            server.stop()
    return {"waiters": WAITERS, "waiters_parked": parked, "waiters_still_waiting_after": still,
            "waiters_answered_202": answers.count(202), "samples": SAMPLES,
            "p50_ms_alone": round(alone, 2), "p50_ms_under_waiters": round(under_waiters, 2),
            "ratio": round(under_waiters / alone, 2)}


def render(result: dict[str, Any]) -> list[str]:
    return [f"Another tenant's GET /v1/jobs/{{id}} while {result['waiters']} requests wait (Prefer: wait={WAIT_S}; "
            f"uvicorn on 127.0.0.1, moto)",
            f"  p50 alone {result['p50_ms_alone']} ms, under {result['waiters_parked']} waiters "
            f"{result['p50_ms_under_waiters']} ms: ratio {result['ratio']} (goal <= 1.5); "
            f"{result['waiters_still_waiting_after']} still waiting after the samples"]


if __name__ == "__main__":
    print("\n".join(render(measure())))
