"""The prompt registry against moto: prompts, immutable versions, labels (rollback, weighted splits), and jobs made
from a prompt reference, through the API, the worker and schedule fires."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from typing import Any

from aijobs.errors import Conflict
from aijobs.local.pollers import FakeLambdaContext
from aijobs.local.server_process import UvicornThread
from aijobs.models.prompts import PromptRequest, VersionRequest
from aijobs.services import Services
from tests.helpers import load_event
from tests.integration.conftest import KEY_B, TENANT_A, run_worker

B = {"Authorization": f"Bearer {KEY_B}"}
SUPPORT = {"name": "support-reply", "instructions": "You answer for {{company}}.",
           "template": [{"role": "user", "content": "Customer {{customer}} asks: {{question}}"}],
           "model": "fake-model", "temperature": 0.2}
VARIABLES = {"company": "Acme", "customer": "Ann", "question": "where is my parcel?"}


def _create(api: Any, **body: Any) -> dict[str, Any]:
    response = api.post("/v1/prompts", json={**SUPPORT, **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _version(api: Any, prompt_id: str, **body: Any) -> dict[str, Any]:
    response = api.post(f"/v1/prompts/{prompt_id}/versions", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _job(api: Any, prompt: dict[str, Any], **body: Any) -> Any:
    return api.post("/v1/jobs", json={"prompt": prompt, **body})


def _submitted(api: Any, prompt: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = _job(api, prompt, **body)
    assert response.status_code == 202, response.text
    return dict(response.json())


def _stored_request(services: Services, job_id: str) -> dict[str, Any]:
    return services.jobs.get_job(tenant=TENANT_A, job_id=job_id).request.model_dump(exclude_none=True)


# --- the registry ----------------------------------------------------------------------------------


def test_create_answers_201_with_version_1_and_reads_list_and_versions(api: Any) -> None:
    response = api.post("/v1/prompts", json={**SUPPORT, "labels": ["production"]})

    assert response.status_code == 201, response.text
    prompt = response.json()
    assert prompt["id"].startswith("pmpt_") and response.headers["Location"] == f"/v1/prompts/{prompt['id']}"
    assert prompt["latest_version"] == 1 and prompt["labels"] == {"production": {"version": 1, "weights": None}}
    assert prompt["latest"]["variables"] == ["company", "customer", "question"]
    assert prompt["latest"]["template"] == SUPPORT["template"] and prompt["latest"]["temperature"] == 0.2
    assert api.get(f"/v1/prompts/{prompt['id']}").json() == prompt
    other = _create(api, name="other")
    listed = api.get("/v1/prompts?limit=1").json()
    assert [p["id"] for p in listed["data"]] == [other["id"]]
    rest = api.get(f"/v1/prompts?limit=1&cursor={listed['next_cursor']}").json()
    assert [p["id"] for p in rest["data"]] == [prompt["id"]]
    versions = api.get(f"/v1/prompts/{prompt['id']}/versions").json()
    assert [v["version"] for v in versions["data"]] == [1] and versions["next_cursor"] is None
    assert api.get(f"/v1/prompts/{prompt['id']}/versions/1").json() == prompt["latest"]


def test_a_change_makes_a_new_version_and_old_ones_stay_as_they_were_and_resolvable(api: Any,
                                                                                     services: Services) -> None:
    prompt = _create(api)
    second = _version(api, prompt["id"], instructions="Be brief, for {{company}}.",
                      template=[{"role": "user", "content": "{{question}}"}])

    assert second["version"] == 2 and second["variables"] == ["company", "question"]
    assert api.get(f"/v1/prompts/{prompt['id']}").json()["latest_version"] == 2
    assert api.get(f"/v1/prompts/{prompt['id']}/versions/1").json() == prompt["latest"]
    assert [v["version"] for v in api.get(f"/v1/prompts/{prompt['id']}/versions").json()["data"]] == [2, 1]
    old = _submitted(api, {"id": prompt["id"], "version": 1, "variables": VARIABLES})
    assert (old["prompt_id"], old["prompt_version"]) == (prompt["id"], 1)
    assert _stored_request(services, old["id"])["instructions"] == "You answer for Acme."
    latest = _submitted(api, {"id": prompt["id"], "variables": {"company": "Acme", "question": "hi?"}})
    assert latest["prompt_version"] == 2  # no production label: the latest version
    assert api.get(f"/v1/prompts/{prompt['id']}/versions/3").status_code == 404


def test_a_label_moves_in_one_call_and_the_next_job_uses_the_version_it_names(api: Any) -> None:
    prompt = _create(api, labels=["production"])
    _version(api, prompt["id"], instructions="v2 for {{company}}",
             template=[{"role": "user", "content": "{{customer}}: {{question}}"}], labels=["production", "staging"])
    ref = {"id": prompt["id"], "variables": VARIABLES}
    assert _submitted(api, ref)["prompt_version"] == 2  # production moved with the new version

    rollback = api.put(f"/v1/prompts/{prompt['id']}/labels/production", json={"version": 1})

    assert rollback.status_code == 200 and rollback.json()["labels"]["production"]["version"] == 1
    assert _submitted(api, ref)["prompt_version"] == 1
    assert _submitted(api, {**ref, "label": "staging"})["prompt_version"] == 2
    assert api.delete(f"/v1/prompts/{prompt['id']}/labels/staging").status_code == 200
    gone = _job(api, {**ref, "label": "staging"})
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "prompt_label_not_found"
    missing = api.put(f"/v1/prompts/{prompt['id']}/labels/production", json={"version": 3})
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "prompt_version_not_found"
    assert api.put(f"/v1/prompts/{prompt['id']}/labels/production", json={"version": 1, "weights": {"1": 1}}
                   ).status_code == 422


def test_a_weighted_label_splits_jobs_by_weight_and_each_job_names_its_version(api: Any,
                                                                                services: Services) -> None:
    prompt = _create(api)
    _version(api, prompt["id"], **{k: SUPPORT[k] for k in ("instructions", "template")})
    split = api.put(f"/v1/prompts/{prompt['id']}/labels/production", json={"weights": {"1": 75, "2": 25}})
    assert split.status_code == 200 and split.json()["labels"]["production"]["weights"] == {"1": 75, "2": 25}
    services.prompts.rng.seed(12)

    jobs = [_submitted(api, {"id": prompt["id"], "variables": VARIABLES}) for _ in range(80)]

    versions = Counter(job["prompt_version"] for job in jobs)
    assert set(versions) == {1, 2} and 45 <= versions[1] <= 75, versions
    for job in jobs[:5]:
        assert api.get(f"/v1/jobs/{job['id']}").json()["prompt_version"] == job["prompt_version"]
    counts = {v["version"]: v["jobs"] for v in api.get(f"/v1/prompts/{prompt['id']}/versions").json()["data"]}
    assert counts == {1: versions[1], 2: versions[2]}  # the split, as the usage per version shows it


def test_missing_and_unexpected_variables_are_a_422_naming_them(api: Any) -> None:
    prompt = _create(api)

    response = _job(api, {"id": prompt["id"], "variables": {"company": "Acme", "colour": "red"}})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "invalid_request" and error["code"] == "prompt_variables"
    assert "missing: customer, question" in error["message"] and "not in the prompt: colour" in error["message"]
    assert api.get("/v1/jobs").json()["data"] == []
    bad_name = _job(api, {"id": prompt["id"], "variables": {"1x": "y"}})
    assert bad_name.status_code == 422 and "variables" in bad_name.json()["error"]["message"]


def test_input_is_required_without_a_prompt_and_appended_after_the_template_with_one(api: Any,
                                                                                    services: Services) -> None:
    neither = api.post("/v1/jobs", json={"model": "fake-model"})
    assert neither.status_code == 422 and "input is required" in neither.json()["error"]["message"]
    bare = _create(api, name="bare", instructions="Summarise for {{who}}.", template=None)
    no_input = _job(api, {"id": bare["id"], "variables": {"who": "me"}})
    assert no_input.status_code == 422 and no_input.json()["error"]["code"] == "prompt_input_missing"
    job = _submitted(api, {"id": bare["id"], "variables": {"who": "me"}}, input="a long text")
    assert _stored_request(services, job["id"])["input"] == "a long text"

    prompt = _create(api)
    job = _submitted(api, {"id": prompt["id"], "variables": VARIABLES}, input="and another thing",
                     model="other-model", max_output_tokens=50)

    stored = _stored_request(services, job["id"])
    assert stored["input"] == [{"role": "user", "content": "Customer Ann asks: where is my parcel?"},
                               {"role": "user", "content": "and another thing"}]
    assert (job["model"], stored["temperature"], stored["max_output_tokens"]) == ("other-model", 0.2, 50)
    assert "prompt" not in stored


def test_a_job_made_from_a_prompt_shows_it_and_the_worker_sends_the_resolved_messages(
        api: Any, services: Services, worker_handler: Any, fake_model: UvicornThread) -> None:
    prompt = _create(api, labels=["production"])
    job = _submitted(api, {"id": prompt["id"], "variables": {**VARIABLES, "question": "{{company}}?"}})

    run_worker(services, worker_handler)

    done = api.get(f"/v1/jobs/{job['id']}").json()
    assert done["status"] == "completed" and (done["prompt_id"], done["prompt_version"]) == (prompt["id"], 1)
    assert done["output"]["text"] == "Echo: Customer Ann asks: {{company}}?"  # a value is never rendered again
    messages = [{"content": "You answer for Acme.", "role": "system"},
                {"content": "Customer Ann asks: {{company}}?", "role": "user"}]
    sent = hashlib.sha256(json.dumps(["fake-model", messages], sort_keys=True).encode()).hexdigest()
    assert fake_model.server.config.app.state.calls[sent] == 1


def test_a_retried_job_runs_the_same_version_again(api: Any, services: Services) -> None:
    prompt = _create(api, labels=["production"])
    job = _submitted(api, {"id": prompt["id"], "variables": VARIABLES})
    api.delete(f"/v1/jobs/{job['id']}")
    _version(api, prompt["id"], instructions="new", labels=["production"])

    retry = api.post(f"/v1/jobs/{job['id']}/retry").json()

    assert (retry["prompt_id"], retry["prompt_version"]) == (prompt["id"], 1)
    assert _stored_request(services, retry["id"]) == _stored_request(services, job["id"])


def test_other_tenants_prompts_are_404_everywhere(api: Any) -> None:
    prompt = _create(api, labels=["production"])
    path = f"/v1/prompts/{prompt['id']}"
    for response in (api.get(path, headers=B), api.get(f"{path}/versions", headers=B),
                     api.get(f"{path}/versions/1", headers=B),
                     api.post(f"{path}/versions", json={"instructions": "x"}, headers=B),
                     api.put(f"{path}/labels/production", json={"version": 1}, headers=B),
                     api.delete(f"{path}/labels/production", headers=B), api.delete(path, headers=B),
                     api.post("/v1/jobs", json={"prompt": {"id": prompt["id"], "variables": VARIABLES}}, headers=B)):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["type"] == "not_found"
    assert api.get("/v1/prompts", headers=B).json()["data"] == []
    assert api.get(path).json()["latest_version"] == 1 and api.get(path).json()["labels"] == prompt["labels"]


def test_delete_removes_the_prompt_and_its_versions_and_jobs_keep_their_version(api: Any) -> None:
    prompt = _create(api)
    job = _submitted(api, {"id": prompt["id"], "variables": VARIABLES})

    assert api.delete(f"/v1/prompts/{prompt['id']}").status_code == 204

    assert api.get(f"/v1/prompts/{prompt['id']}").status_code == 404
    assert api.get(f"/v1/prompts/{prompt['id']}/versions/1").status_code == 404
    assert _job(api, {"id": prompt["id"], "version": 1, "variables": VARIABLES}).status_code == 404
    assert api.get(f"/v1/jobs/{job['id']}").json()["prompt_version"] == 1


def test_concurrent_changes_never_make_the_same_version_number(api: Any, services: Services) -> None:
    prompt = services.prompts.create_prompt(tenant=TENANT_A, request=PromptRequest.model_validate(SUPPORT))
    made: list[int] = []
    start = threading.Barrier(6)

    def change(n: int) -> None:
        start.wait()
        for i in range(3):
            try:
                made.append(services.prompts.add_version(tenant=TENANT_A, prompt_id=prompt.id, request=VersionRequest(
                    instructions=f"change {n}.{i}")).version)
            except Conflict as exc:  # lost every race: a retryable 409, never a duplicate
                assert exc.code == "prompt_changed" and exc.retryable

    threads = [threading.Thread(target=change, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    latest = api.get(f"/v1/prompts/{prompt.id}").json()["latest_version"]
    assert sorted(made) == list(range(2, latest + 1)) and len(made) >= 12  # distinct numbers, no gap
    versions = api.get(f"/v1/prompts/{prompt.id}/versions?limit=100").json()["data"]
    assert sorted(v["version"] for v in versions) == list(range(1, latest + 1))
    assert len({v["instructions"] for v in versions if v["version"] > 1}) == len(made)  # no change overwritten


def test_invalid_prompts_and_labels_are_422(api: Any) -> None:
    for body in ({"name": "x"}, {**SUPPORT, "template": []}, {**SUPPORT, "labels": ["bad label"]},
                 {**SUPPORT, "instructions": "x" * 50_001}, {**SUPPORT, "temperature": 3}):
        assert api.post("/v1/prompts", json=body).status_code in (413, 422), body
    prompt = _create(api)
    for body in ({"weights": {"1": 0}}, {"weights": {"one": 1}}, {"weights": {}}, {}):
        response = api.put(f"/v1/prompts/{prompt['id']}/labels/production", json=body)
        assert response.status_code == 422, body
    for n in range(16):
        assert api.put(f"/v1/prompts/{prompt['id']}/labels/l{n}", json={"version": 1}).status_code == 200
    over = api.put(f"/v1/prompts/{prompt['id']}/labels/one-more", json={"version": 1})
    assert over.status_code == 422 and over.json()["error"]["code"] == "too_many_labels"
    assert api.put(f"/v1/prompts/{prompt['id']}/labels/l0", json={"version": 1}).status_code == 200


def test_creating_with_an_idempotency_key_makes_one_prompt_and_one_version(api: Any) -> None:
    headers = {"Idempotency-Key": "prompt-1"}
    first = api.post("/v1/prompts", json=SUPPORT, headers=headers)
    again = api.post("/v1/prompts", json=SUPPORT, headers=headers)
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    version = api.post(f"/v1/prompts/{first.json()['id']}/versions", json={"instructions": "x"}, headers=headers)
    replay = api.post(f"/v1/prompts/{first.json()['id']}/versions", json={"instructions": "x"}, headers=headers)
    assert version.json()["version"] == replay.json()["version"] == 2
    assert len(api.get("/v1/prompts").json()["data"]) == 1


def test_a_batch_item_naming_an_unknown_prompt_fails_alone(api: Any) -> None:
    prompt = _create(api)
    response = api.post("/v1/jobs/batch", json={"jobs": [
        {"prompt": {"id": prompt["id"], "variables": VARIABLES}},
        {"prompt": {"id": "pmpt_01JZZZZZZZZZZZZZZZZZZZZZZZ"}},
        {"prompt": {"id": prompt["id"]}}]})
    assert response.status_code == 202
    first, unknown, no_variables = response.json()["data"]
    assert first["status"] == "queued"
    assert unknown["error"]["code"] == "prompt_not_found" and no_variables["error"]["code"] == "prompt_variables"


# --- schedules -------------------------------------------------------------------------------------


def test_a_schedule_with_a_prompt_resolves_it_at_each_fire(api: Any, services: Services) -> None:
    from aijobs.local.stack import load_handler

    handler = load_handler("scheduler", "lambda_handler")
    prompt = _create(api, labels=["production"])
    ref = {"id": prompt["id"], "variables": VARIABLES}
    refused = api.post("/v1/schedules", json={"expression": "rate(1 hour)", "job": {"prompt": {"id": prompt["id"]}}})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "prompt_variables"
    schedule = api.post("/v1/schedules", json={"expression": "rate(1 hour)", "job": {"prompt": ref}}).json()

    def fire(at: str) -> dict[str, Any]:
        event = {**load_event("scheduler_fire"), "schedule_id": schedule["id"], "tenant": TENANT_A,
                 "scheduled_time": at}
        return dict(handler(event, FakeLambdaContext("SchedulerFunction")))

    first = fire("2026-11-22T10:00:00Z")
    _version(api, prompt["id"], template=[{"role": "user", "content": "v2 {{company}} {{customer}} {{question}}"}],
             labels=["production"])
    second = fire("2026-11-22T11:00:00Z")
    _version(api, prompt["id"], template=[{"role": "user", "content": "v3 wants {{other}}"}], labels=["production"])
    third = fire("2026-11-22T12:00:00Z")

    versions = [api.get(f"/v1/jobs/{outcome['job_id']}").json()["prompt_version"] for outcome in (first, second)]
    assert versions == [1, 2]
    assert third["outcome"] == "skipped" and third["reason"] == "prompt_variables"
