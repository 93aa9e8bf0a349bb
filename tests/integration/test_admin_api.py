"""/v1/admin/: the admin key (404 otherwise), tenants' keys and limits, tenant deletion, allowed models, the audit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from aijobs.dynamo import api_key_key, limits_key, schedule_key, tenant_key
from aijobs.errors import AuthenticationError
from aijobs.ids import hash_api_key
from aijobs.local.pollers import FakeLambdaContext
from aijobs.local.server_process import UvicornThread
from aijobs.local.stack import load_handler
from aijobs.local.template import LocalResources
from aijobs.services import Services
from tests.helpers import load_event
from tests.integration.conftest import KEY_A, KEY_B, TENANT_A, api_client, installed_services

ADMIN_KEY = "aj_admin_test_key_0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
ROUTES = [("POST", "/v1/admin/tenants/acme/keys"), ("GET", "/v1/admin/tenants/acme/keys"),
          ("DELETE", "/v1/admin/keys/key_01J00000000000000000000000"), ("GET", "/v1/admin/tenants/acme/limits"),
          ("PUT", "/v1/admin/tenants/acme/limits"), ("DELETE", "/v1/admin/tenants/acme"), ("GET", "/v1/admin/audit"),
          ("GET", "/v1/admin/tenants/acme/usage"), ("GET", "/v1/admin/tenants")]
ROUTE_NOT_FOUND = {"type": "not_found", "code": "route_not_found"}

AwsWorld = tuple[boto3.session.Session, LocalResources]


@pytest.fixture
def admin_services(aws: AwsWorld, fake_model: UvicornThread) -> Iterator[Services]:
    with installed_services(aws, fake_model, admin_key=ADMIN_KEY, auth_failures_limit=5) as svc:
        yield svc


@pytest.fixture
def admin(admin_services: Services) -> Iterator[Any]:
    with api_client(ADMIN_KEY) as client:
        yield client


def _error(response: Any) -> dict[str, Any]:
    error = response.json()["error"]
    return {"type": error["type"], "code": error["code"]}


def _new_key(admin: Any, tenant: str = "acme") -> dict[str, Any]:
    response = admin.post(f"/v1/admin/tenants/{tenant}/keys")
    assert response.status_code == 201, response.text
    return dict(response.json())


def _as(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _item(svc: Services, key: dict[str, str]) -> dict[str, Any] | None:
    return svc.table.get_item(Key=key, ConsistentRead=True).get("Item")  # type: ignore[no-any-return]


# --- the admin key -------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_without_an_admin_key_configured_every_admin_route_is_404_whatever_the_key(
        services: Services, method: str, path: str) -> None:
    assert services.settings.admin_key is None and not services.settings.admin_key_secret_arn
    with api_client(ADMIN_KEY) as client:
        response = client.request(method, path, json={})
    assert response.status_code == 404 and _error(response) == ROUTE_NOT_FOUND
    assert _item(services, tenant_key("acme")) is None  # nothing was done


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_tenant_key_a_wrong_key_or_none_is_the_404_of_no_route(
        admin_services: Services, method: str, path: str) -> None:
    with api_client() as client:
        unknown = client.get("/v1/no-such-route")  # what a route that does not exist answers
    for headers in (_as(KEY_A), _as("aj_wrong"), {"Authorization": ""}, {"Authorization": f"Basic {ADMIN_KEY}"}):
        with api_client() as client:
            response = client.request(method, path, json={}, headers=headers)
        assert response.status_code == 404, headers
        assert response.json()["error"] | {"request_id": None} == unknown.json()["error"] | {"request_id": None}
        assert "www-authenticate" not in response.headers
    assert _item(admin_services, tenant_key("acme")) is None


def test_wrong_admin_keys_count_as_failed_authentications_and_past_the_limit_even_the_right_key_is_404(
        admin_services: Services) -> None:
    with api_client("aj_guess") as client:
        for _ in range(admin_services.settings.auth_failures_limit):
            assert client.get("/v1/admin/audit").status_code == 404
        assert client.get("/v1/admin/audit", headers=ADMIN).status_code == 404  # bounded, and still no tell
        assert client.get("/v1/jobs", headers=_as(KEY_A)).status_code == 429  # the same count as tenant keys
    admin_services.clock.advance(admin_services.settings.auth_failures_window_s + 1)
    with api_client(ADMIN_KEY) as client:
        assert client.get("/v1/admin/audit").status_code == 200


def test_the_admin_key_can_come_from_secrets_manager_read_once_per_process(aws: AwsWorld,
                                                                           fake_model: UvicornThread) -> None:
    session, _ = aws
    secrets = session.client("secretsmanager")
    arn = secrets.create_secret(Name="test-admin-key", SecretString=ADMIN_KEY)["ARN"]
    with installed_services(aws, fake_model, admin_key_secret_arn=arn) as svc, api_client(ADMIN_KEY) as client:
        assert client.get("/v1/admin/audit").status_code == 200
        secrets.put_secret_value(SecretId=arn, SecretString="aj_rotated")
        assert client.get("/v1/admin/audit").status_code == 200  # the process keeps the key it read
        assert svc.tenants.admin_key() == ADMIN_KEY
        secrets.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)


# --- keys ----------------------------------------------------------------------------------------


def test_a_created_key_is_shown_once_works_for_jobs_is_listed_without_secrets_and_revoked_is_401(
        admin: Any, admin_services: Services) -> None:
    created = _new_key(admin)
    assert set(created) == {"id", "key", "tenant", "created_at"} and created["tenant"] == "acme"
    assert created["id"].startswith("key_") and created["key"].startswith("aj_")
    with api_client(created["key"]) as tenant:
        job = tenant.post("/v1/jobs", json={"input": "hello"})
        assert job.status_code == 202 and tenant.get(f"/v1/jobs/{job.json()['id']}").status_code == 200
        second = _new_key(admin)
        listed = admin.get("/v1/admin/tenants/acme/keys")
        assert listed.status_code == 200
        assert [k["id"] for k in listed.json()["data"]] == [second["id"], created["id"]]  # newest first
        assert listed.json()["data"][1] == {"id": created["id"], "tenant": "acme", "prefix": created["key"][:8],
                                            "created_at": created["created_at"]}
        for secret in (created["key"], hash_api_key(created["key"]), second["key"], hash_api_key(second["key"])):
            assert secret not in listed.text
        page = admin.get("/v1/admin/tenants/acme/keys?limit=1").json()
        assert len(page["data"]) == 1 and page["next_cursor"]

        assert admin.delete(f"/v1/admin/keys/{created['id']}").status_code == 204
        refused = tenant.get("/v1/jobs")
        assert refused.status_code == 401 and _error(refused)["code"] == "invalid_api_key"
    with api_client(second["key"]) as other:
        assert other.get("/v1/jobs").status_code == 200  # the tenant's other key is untouched
    assert [k["id"] for k in admin.get("/v1/admin/tenants/acme/keys").json()["data"]] == [second["id"]]
    again = admin.delete(f"/v1/admin/keys/{created['id']}")
    assert again.status_code == 404 and _error(again)["code"] == "key_not_found"
    assert _item(admin_services, api_key_key(hash_api_key(created["key"]))) is None


def test_a_revoked_key_is_refused_by_every_process_that_has_not_cached_it(admin: Any,
                                                                         admin_services: Services) -> None:
    created = _new_key(admin)
    warm = Services(settings=admin_services.settings, session=admin_services.session, clock=admin_services.clock)
    assert warm.tenants.authenticate(created["key"]).id == "acme"  # another process has it cached

    admin.delete(f"/v1/admin/keys/{created['id']}")

    # The documented delay: a warm process accepts it until its cache entry ends (AIJOBS_API_KEY_CACHE_S) ...
    assert warm.tenants.authenticate(created["key"]).id == "acme"
    cold = Services(settings=admin_services.settings, session=admin_services.session, clock=admin_services.clock)
    with pytest.raises(AuthenticationError, match="not valid"):  # ... which then reads what this one does
        cold.tenants.authenticate(created["key"])


def test_keys_of_a_tenant_that_does_not_exist_or_a_bad_name(admin: Any) -> None:
    missing = admin.get("/v1/admin/tenants/nobody/keys")
    assert missing.status_code == 404 and _error(missing)["code"] == "tenant_not_found"
    for path in ("/v1/admin/tenants/no%20spaces/keys", f"/v1/admin/tenants/{'x' * 65}/keys"):
        response = admin.post(path)
        assert response.status_code == 422 and _error(response)["code"] == "invalid_fields"
    assert admin.get("/v1/admin/tenants/nobody/limits").status_code == 404
    assert admin.put("/v1/admin/tenants/nobody/limits", json={}).status_code == 404
    assert admin.delete("/v1/admin/tenants/nobody").status_code == 404


def test_a_key_made_before_key_ids_works_is_not_listed_and_stops_with_its_tenant(
        admin: Any, admin_services: Services) -> None:
    _new_key(admin, "old")
    legacy = "aj_legacy_key_without_an_id"
    admin_services.table.put_item(Item={**api_key_key(hash_api_key(legacy)), "tenant": "old",
                                        "created_at": int(admin_services.clock())})
    with api_client(legacy) as client:
        assert client.get("/v1/jobs").status_code == 200
        assert len(admin.get("/v1/admin/tenants/old/keys").json()["data"]) == 1
        assert admin.delete("/v1/admin/tenants/old").status_code == 204
        assert client.get("/v1/jobs").status_code == 401
        admin_services.clock.advance(1)
        _new_key(admin, "old")  # a new tenant of the same name does not bring it back
        admin_services.tenants._keys.clear()
        assert client.get("/v1/jobs").status_code == 401


# --- limits --------------------------------------------------------------------------------------


def test_limits_read_null_as_the_defaults_and_put_replaces_them(admin: Any, admin_services: Services) -> None:
    _new_key(admin)
    defaults = admin_services.settings.default_limits().model_dump()
    first = admin.get("/v1/admin/tenants/acme/limits")
    assert first.status_code == 200
    assert first.json()["tenant"] == "acme" and set(first.json()["set"].values()) == {None}
    assert first.json()["in_force"] == defaults

    put = admin.put("/v1/admin/tenants/acme/limits", json={"requests_per_minute": 5, "allowed_models": ["m1"]})
    assert put.status_code == 200
    assert put.json()["set"]["requests_per_minute"] == 5 and put.json()["set"]["concurrent_jobs"] is None
    assert put.json()["in_force"] == {**defaults, "requests_per_minute": 5, "allowed_models": ["m1"]}
    assert admin.get("/v1/admin/tenants/acme/limits").json() == put.json()
    assert admin_services.tenants.limits("acme").requests_per_minute == 5  # in force here at once

    replaced = admin.put("/v1/admin/tenants/acme/limits", json={"concurrent_jobs": 2}).json()
    assert replaced["set"]["requests_per_minute"] is None and replaced["in_force"]["requests_per_minute"] == \
        defaults["requests_per_minute"]


def test_an_operator_reads_any_tenant_s_usage_as_the_tenant_reads_its_own(admin: Any, admin_services: Services) -> None:
    key = _new_key(admin)["key"]
    with api_client(key) as tenant:
        assert tenant.post("/v1/jobs", json={"input": "counted"}).status_code == 202
        own = tenant.get("/v1/usage").json()
    usage = admin.get("/v1/admin/tenants/acme/usage")
    assert usage.status_code == 200
    assert usage.json()["data"] == own["data"] and usage.json()["today"]["jobs"] == 1
    assert admin.get("/v1/admin/tenants/nobody/usage").status_code == 404
    assert admin.get("/v1/admin/tenants/acme/usage", params={"from": "2026-01-01", "to": "2026-12-31"}).status_code \
        == 422  # more than 92 days


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"requests_per_minute": 0}, 422, "invalid_fields"),
    ({"daily_cost_usd": -1}, 422, "invalid_fields"),
    ({"concurrent_jobs": "many"}, 422, "invalid_fields"),
    ({"allowed_models": ["has space"]}, 422, "invalid_fields"),
    ({"on_limit": "explode"}, 422, "invalid_fields"),
    ({"unknown": 1}, 422, "invalid_fields"),
    ("{not json", 400, "invalid_json"),
])
def test_bad_limits_are_refused_and_change_nothing(admin: Any, admin_services: Services, body: Any, status: int,
                                                   code: str) -> None:
    _new_key(admin)
    content = body if isinstance(body, str) else json.dumps(body)
    response = admin.put("/v1/admin/tenants/acme/limits", content=content,
                         headers={"Content-Type": "application/json"})
    assert response.status_code == status and _error(response)["code"] == code
    assert _item(admin_services, limits_key("acme")) is None


def test_a_bad_limits_body_without_the_admin_key_is_still_the_404_of_no_route(admin_services: Services) -> None:
    with api_client(KEY_A) as client:
        response = client.put("/v1/admin/tenants/acme/limits", content="{not json",
                              headers={"Content-Type": "application/json"})
    assert response.status_code == 404 and _error(response) == ROUTE_NOT_FOUND


# --- allowed models ------------------------------------------------------------------------------


def test_a_model_outside_allowed_models_is_403_at_every_submit(admin: Any, admin_services: Services) -> None:
    admin.put(f"/v1/admin/tenants/{TENANT_A}/limits", json={"allowed_models": ["small"]})
    with api_client(KEY_A) as client:
        # the default model (fake-model here) counts as the job's model
        for body in ({"input": "hi"}, {"input": "hi", "model": "big"}):
            refused = client.post("/v1/jobs", json=body)
            assert refused.status_code == 403, refused.text
            assert _error(refused) == {"type": "permission_denied", "code": "model_not_allowed"}
            assert refused.json()["error"]["retryable"] is False
        assert client.post("/v1/jobs", json={"input": "hi", "model": "small"}).status_code == 202
        batch = client.post("/v1/jobs/batch", json={"jobs": [{"input": "a", "model": "small"}, {"input": "b"},
                                                              {"input": "c", "model": 7}]}).json()["data"]
        assert batch[0]["status"] == "queued"
        assert batch[1]["error"]["code"] == "model_not_allowed" and batch[2]["error"]["code"] == "invalid_fields"
        assert len(client.get("/v1/jobs").json()["data"]) == 2  # nothing stored for the refused ones
        schedule = client.post("/v1/schedules", json={"expression": "rate(1 hour)", "job": {"input": "x"}})
        assert schedule.status_code == 403 and _error(schedule)["code"] == "model_not_allowed"
    with api_client(KEY_B) as other:  # another tenant's limits are its own
        assert other.post("/v1/jobs", json={"input": "hi", "model": "big"}).status_code == 202


def test_retry_and_schedules_meet_allowed_models_as_they_are_now(admin: Any, admin_services: Services) -> None:
    with api_client(KEY_A) as client:
        job = client.post("/v1/jobs", json={"input": "hi", "model": "big"}).json()
        client.delete(f"/v1/jobs/{job['id']}")
        schedule = client.post("/v1/schedules", json={"expression": "rate(1 hour)",
                                                      "job": {"input": "x", "model": "big"}}).json()
        admin.put(f"/v1/admin/tenants/{TENANT_A}/limits", json={"allowed_models": ["small"]})

        retried = client.post(f"/v1/jobs/{job['id']}/retry")
        assert retried.status_code == 403 and _error(retried)["code"] == "model_not_allowed"
        run = client.post(f"/v1/schedules/{schedule['id']}/run")
        assert run.status_code == 403
        patched = client.patch(f"/v1/schedules/{schedule['id']}", json={"job": {"input": "y", "model": "huge"}})
        assert patched.status_code == 403
        event = load_event("scheduler_fire")
        event.update(schedule_id=schedule["id"], tenant=TENANT_A, scheduled_time="2026-11-22T10:00:00Z")
        fired = load_handler("scheduler", "lambda_handler")(event, FakeLambdaContext("SchedulerFunction"))
        assert fired == {"outcome": "skipped", "schedule_id": schedule["id"],
                         "reason": "model_not_allowed"}
        assert len(client.get("/v1/jobs").json()["data"]) == 1  # the cancelled job alone


# --- deleting a tenant ---------------------------------------------------------------------------


def test_deleting_a_tenant_stops_its_keys_and_schedules_and_removes_its_limits_and_secrets(
        admin: Any, admin_services: Services) -> None:
    created = _new_key(admin)
    admin.put("/v1/admin/tenants/acme/limits", json={"concurrent_jobs": 3})
    with api_client(created["key"]) as tenant:
        job = tenant.post("/v1/jobs", json={"input": "keep me until retention"}).json()
        schedule = tenant.post("/v1/schedules", json={"expression": "rate(1 hour)", "job": {"input": "x"}}).json()
        assert tenant.get("/v1/webhook-secrets").status_code == 200
        assert admin_services.scheduler_client.get_schedule(Name=schedule["id"],
                                                            GroupName=admin_services.settings.schedule_group)

        assert admin.delete("/v1/admin/tenants/acme").status_code == 204

        assert tenant.get(f"/v1/jobs/{job['id']}").status_code == 401
    with pytest.raises(ClientError) as gone:
        admin_services.scheduler_client.get_schedule(Name=schedule["id"],
                                                     GroupName=admin_services.settings.schedule_group)
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert _item(admin_services, schedule_key(schedule["id"])) is None
    assert _item(admin_services, tenant_key("acme")) is None and _item(admin_services, limits_key("acme")) is None
    partition = admin_services.table.query(KeyConditionExpression="pk = :p",
                                           ExpressionAttributeValues={":p": "TENANT#acme"})["Items"]
    assert partition == []  # signing secrets too
    kept = admin_services.store.get_job(job["id"], consistent=True)
    assert kept is not None and kept.expires_at > admin_services.clock()  # jobs expire by retention
    assert admin.get("/v1/admin/tenants/acme/keys").status_code == 404
    assert admin.delete("/v1/admin/tenants/acme").status_code == 404
    with api_client(KEY_A) as client:  # other tenants are untouched
        assert client.get("/v1/jobs").status_code == 200


# --- the audit -----------------------------------------------------------------------------------


def test_every_admin_action_is_audited_newest_first_with_before_and_after_and_no_secret(
        admin: Any, admin_services: Services) -> None:
    created = _new_key(admin)
    admin.put("/v1/admin/tenants/acme/limits", json={"requests_per_minute": 7})
    admin.put("/v1/admin/tenants/acme/limits", json={"requests_per_minute": 8})
    admin.delete(f"/v1/admin/keys/{created['id']}")
    admin.delete("/v1/admin/tenants/acme")
    admin.get("/v1/admin/audit")  # reads are not audited

    response = admin.get("/v1/admin/audit")
    entries = response.json()["data"]
    assert [(e["action"], e["target"]) for e in entries] == [
        ("delete_tenant", "acme"), ("revoke_key", created["id"]), ("set_limits", "acme"), ("set_limits", "acme"),
        ("create_key", created["id"])]
    assert {e["actor"] for e in entries} == {"admin"} and {e["tenant"] for e in entries} == {"acme"}
    assert all(e["id"].startswith("aud_") and e["at"] >= created["created_at"] for e in entries)
    delete, revoke, second, first, create = entries
    assert create["before"] is None and create["after"]["id"] == created["id"]
    assert first["before"]["requests_per_minute"] is None and first["after"]["requests_per_minute"] == 7
    assert second["before"]["requests_per_minute"] == 7 and second["after"]["requests_per_minute"] == 8
    assert revoke["before"]["id"] == created["id"] and revoke["after"] is None
    assert delete["before"]["keys"] == [] and delete["before"]["limits"]["requests_per_minute"] == 8
    assert created["key"] not in response.text and hash_api_key(created["key"]) not in response.text

    page = admin.get("/v1/admin/audit?limit=2").json()
    rest = admin.get(f"/v1/admin/audit?limit=10&cursor={page['next_cursor']}").json()
    assert [e["id"] for e in page["data"] + rest["data"]] == [e["id"] for e in entries]
    assert rest["next_cursor"] is None
    assert admin.get("/v1/admin/audit?cursor=bm9wZQ==").status_code == 422


def test_the_tenants_are_listed_by_name_and_a_deleted_one_is_not(admin: Any, admin_services: Services) -> None:
    _new_key(admin, "zeta")
    _new_key(admin, "acme")
    # a tenant made before tenants were listed is listed once it gets another key
    admin_services.table.update_item(Key=tenant_key("acme"), UpdateExpression="REMOVE gsi1pk, gsi1sk")
    assert "acme" not in [t["tenant"] for t in admin.get("/v1/admin/tenants").json()["data"]]
    _new_key(admin, "acme")
    listed = admin.get("/v1/admin/tenants").json()
    assert [t["tenant"] for t in listed["data"]] == sorted([TENANT_A, "tenant-b", "acme", "zeta"])
    assert listed["next_cursor"] is None and all(t["created_at"] > 0 for t in listed["data"])
    first = admin.get("/v1/admin/tenants", params={"limit": 2}).json()
    rest = admin.get("/v1/admin/tenants", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [t["tenant"] for t in first["data"] + rest["data"]] == [t["tenant"] for t in listed["data"]]
    assert admin.delete("/v1/admin/tenants/zeta").status_code == 204
    assert "zeta" not in [t["tenant"] for t in admin.get("/v1/admin/tenants").json()["data"]]
