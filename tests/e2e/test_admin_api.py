"""The admin API through the stack of `make run` with AIJOBS_ADMIN_KEY set: an operator makes a tenant and its
limits over HTTP, and the new tenant's key runs a job."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack, start_stack, stop_stack
from tests.helpers import eventually

ADMIN_KEY = "aj_e2e_admin_key_0123456789"


@pytest.fixture(scope="module")
def admin_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    process, running = start_stack(tmp_path_factory.mktemp("admin") / "stack.log", AIJOBS_ADMIN_KEY=ADMIN_KEY)
    yield running
    stop_stack(process)


def _finished(client: httpx.Client, job_id: str) -> dict[str, Any] | None:
    job = client.get(f"/v1/jobs/{job_id}").json()
    return job if job["status"] in ("completed", "failed", "cancelled") else None


def test_an_operator_creates_a_tenant_key_and_sets_limits_and_the_key_runs_a_job(admin_stack: Stack) -> None:
    log = Path(admin_stack.log_path).read_text()
    assert "Admin API (/v1/admin/): on" in log and ADMIN_KEY not in log  # the banner never prints the key
    admin = httpx.Client(base_url=admin_stack.url, timeout=30, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    with admin:
        created = admin.post("/v1/admin/tenants/newco/keys")
        assert created.status_code == 201, created.text
        key = created.json()["key"]
        limits = admin.put("/v1/admin/tenants/newco/limits",
                           json={"requests_per_minute": 100, "allowed_models": ["fake-model"]})
        assert limits.status_code == 200 and limits.json()["in_force"]["requests_per_minute"] == 100

        with httpx.Client(base_url=admin_stack.url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as tenant:
            assert tenant.get("/v1/admin/audit").status_code == 404  # a tenant key never reaches the admin API
            refused = tenant.post("/v1/jobs", json={"input": "hi", "model": "gpt-4o"})
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "model_not_allowed"
            submitted = tenant.post("/v1/jobs", json={"input": "Hello from newco"})
            assert submitted.status_code == 202, submitted.text
            job = eventually(lambda: _finished(tenant, submitted.json()["id"]))
            assert job["status"] == "completed" and job["output"]["text"] == "Echo: Hello from newco"

            assert admin.delete(f"/v1/admin/keys/{created.json()['id']}").status_code == 204
            assert tenant.get("/v1/jobs").status_code == 401  # one process: at once
        audit = admin.get("/v1/admin/audit").json()["data"]
        assert [e["action"] for e in audit] == ["revoke_key", "set_limits", "create_key"]
        assert key not in str(audit)


def _tenant(stack: Stack, admin: httpx.Client, tenant: str, **limits: Any) -> httpx.Client:
    """A new tenant's client, its key made and its limits set by the operator through the admin API."""
    key = admin.post(f"/v1/admin/tenants/{tenant}/keys").json()["key"]
    assert admin.put(f"/v1/admin/tenants/{tenant}/limits", json=limits).status_code == 200
    return httpx.Client(base_url=stack.url, timeout=30, headers={"Authorization": f"Bearer {key}"})


def test_an_operators_limits_hold_for_a_tenant_and_it_reads_its_usage(admin_stack: Stack) -> None:
    """Issue 11's "done when": 429 with Retry-After past the request rate, the token rate and the budget; never more
    jobs running than the concurrency limit while all of them complete; the usage endpoint."""
    big = {"input": "hi", "max_output_tokens": 2000}  # about 0.0012 USD at fake-model's price, 2,007 tokens
    with httpx.Client(base_url=admin_stack.url, timeout=30,
                      headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as admin:
        with _tenant(admin_stack, admin, "rate-co", requests_per_minute=3) as tenant:
            # fixed one-minute windows: should a minute end among them, 7 requests still pass one limit of 3
            answers = [tenant.get("/v1/jobs") for _ in range(7)]
            refused = [a for a in answers if a.status_code == 429]
            assert refused and refused[0].json()["error"]["code"] == "requests_per_minute"
            assert 1 <= int(refused[0].headers["Retry-After"]) <= 60

        with _tenant(admin_stack, admin, "token-co", tokens_per_minute=3000) as tenant:
            # two of three submissions in a second share a minute, and 2 x 2,007 tokens do not fit in 3,000
            answers = [tenant.post("/v1/jobs", json=big) for _ in range(3)]
            refused = [a for a in answers if a.status_code == 429]
            assert refused and refused[0].json()["error"]["code"] == "tokens_per_minute"
            assert 1 <= int(refused[0].headers["Retry-After"]) <= 60

        with _tenant(admin_stack, admin, "budget-co", daily_cost_soft_usd=0.001, daily_cost_usd=0.002) as tenant:
            # slow jobs: none ends (and gives back the rest of its estimate) before the third is refused
            slow = {**big, "input": "hi [[delay_ms=5000]]"}
            answers = [tenant.post("/v1/jobs", json=slow) for _ in range(3)]
            assert [a.status_code for a in answers] == [202, 202, 429]
            assert "spent_usd=0.0012" in answers[0].headers["x-aijobs-budget-warning"]
            error = answers[2].json()["error"]
            assert (error["type"], error["code"]) == ("quota_exceeded", "daily_budget")
            assert 1 <= int(answers[2].headers["Retry-After"]) <= 86_400  # to the next UTC midnight
            assert tenant.get("/v1/jobs").status_code == 200  # reads keep working
            budget = tenant.get("/v1/usage").json()["budget"]
            assert budget["soft_limit_reached"] and budget["hard_limit_reached"]

        with _tenant(admin_stack, admin, "busy-co", concurrent_jobs=2) as tenant:
            ids = [tenant.post("/v1/jobs", json={"input": f"slow {n} [[delay_ms=1500]]"}).json()["id"]
                   for n in range(6)]
            peak = 0

            def all_done() -> bool:
                nonlocal peak
                statuses = [j["status"] for j in tenant.post("/v1/jobs/status", json={"ids": ids}).json()["data"]]
                peak = max(peak, statuses.count("in_progress"))
                return all(s == "completed" for s in statuses)

            eventually(all_done, timeout_s=120, interval_s=0.1)
            assert 1 <= peak <= 2
            jobs = [tenant.get(f"/v1/jobs/{job_id}").json() for job_id in ids]
            # each job's usage is counted right after its final write
            usage = eventually(lambda: (u := tenant.get("/v1/usage").json())["today"]["output_tokens"]
                               == sum(j["usage"]["output_tokens"] for j in jobs) and u)
            assert usage["today"]["jobs"] == 6
            assert usage["budget"]["spent_usd"] == pytest.approx(sum(j["cost_usd"] for j in jobs))
