"""The prompt registry through the stack of `make run`, over HTTP: a labelled prompt, a job from it, a rollback."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.e2e.conftest import Stack
from tests.helpers import eventually


def _finished(client: httpx.Client, job_id: str) -> dict[str, Any] | None:
    job = client.get(f"/v1/jobs/{job_id}").json()
    return job if job["status"] in ("completed", "failed", "cancelled") else None


def test_a_job_from_a_labelled_prompt_runs_its_version_and_a_rollback_changes_the_next_job(stack: Stack) -> None:
    word = uuid.uuid4().hex[:8]
    with stack.client() as client:
        prompt = client.post("/v1/prompts", json={
            "name": "greeting", "instructions": "Be kind.", "labels": ["production"],
            "template": [{"role": "user", "content": f"Hello {{{{name}}}} v1 {word}"}]}).json()
        client.post(f"/v1/prompts/{prompt['id']}/versions", json={
            "template": [{"role": "user", "content": f"Hi {{{{name}}}} v2 {word}"}], "labels": ["production"]})
        ref = {"id": prompt["id"], "variables": {"name": "Ann"}}

        second = client.post("/v1/jobs", json={"prompt": ref}).json()
        assert client.put(f"/v1/prompts/{prompt['id']}/labels/production", json={"version": 1}).status_code == 200
        first = client.post("/v1/jobs", json={"prompt": ref}).json()

        done = [eventually(lambda job=job: _finished(client, job["id"])) for job in (second, first)]
    assert [(job["prompt_version"], job["output"]["text"]) for job in done] == [
        (2, f"Echo: Hi Ann v2 {word}"), (1, f"Echo: Hello Ann v1 {word}")]
