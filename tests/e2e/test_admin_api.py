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
