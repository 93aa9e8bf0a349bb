from __future__ import annotations

import json
from typing import Any

import pytest

from aijobs.ids import hash_api_key
from aijobs.operator import main
from aijobs.services import Services


def test_create_key_prints_a_working_key_for_the_tenant(services: Services, capsys: pytest.CaptureFixture[str],
                                                         api: Any) -> None:
    assert main(["create-key", "--tenant", "acme"]) == 0
    key = capsys.readouterr().out.strip()
    assert services.tenants.authenticate(key).id == "acme"
    assert api.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_create_key_rejects_a_bad_tenant_name(services: Services) -> None:
    with pytest.raises(SystemExit):
        main(["create-key", "--tenant", "no spaces please"])


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_operator_commands_do_what_the_admin_api_does_audited_as_the_operator(
        services: Services, capsys: pytest.CaptureFixture[str], api: Any) -> None:
    code, key, err = _run(capsys, "create-key", "--tenant", "acme")
    key = key.strip()
    key_id = err.split()[1]
    assert code == 0 and key_id.startswith("key_") and key not in err

    code, out, _ = _run(capsys, "list-keys", "--tenant", "acme")
    assert code == 0 and [k["id"] for k in json.loads(out)["data"]] == [key_id]
    assert key not in out and hash_api_key(key) not in out

    code, out, _ = _run(capsys, "set-limits", "--tenant", "acme", "--limits",
                        '{"requests_per_minute": 9, "allowed_models": ["fake-model"]}')
    limits = json.loads(out)
    assert code == 0 and limits["set"]["requests_per_minute"] == 9 and limits["in_force"]["requests_per_minute"] == 9
    code, out, _ = _run(capsys, "get-limits", "--tenant", "acme")
    assert code == 0 and json.loads(out) == limits
    assert services.tenants.tenant_limits("acme").model_dump(mode="json") == limits  # what GET .../limits answers

    code, out, _ = _run(capsys, "revoke-key", "--id", key_id)
    assert code == 0 and json.loads(out)["id"] == key_id
    assert api.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    code, _, err = _run(capsys, "revoke-key", "--id", key_id)
    assert code == 1 and "key_not_found" in err

    code, _, _ = _run(capsys, "delete-tenant", "--tenant", "acme", "--yes")
    assert code == 0 and services.tenants.store.tenant_created_at("acme") is None
    code, _, err = _run(capsys, "get-limits", "--tenant", "acme")
    assert code == 1 and "tenant_not_found" in err

    code, out, _ = _run(capsys, "audit", "--limit", "10")
    entries = json.loads(out)["data"]
    assert code == 0 and [e["action"] for e in entries] == ["delete_tenant", "revoke_key", "set_limits",
                                                             "create_key"]
    assert {e["actor"] for e in entries} == {"operator"} and key not in out


@pytest.mark.parametrize("argv", [
    ["set-limits", "--tenant", "acme", "--limits", '{"requests_per_minute": 0}'],
    ["set-limits", "--tenant", "acme", "--limits", "not json"],
    ["delete-tenant", "--tenant", "acme"],  # without --yes
    ["audit", "--limit", "0"],
])
def test_operator_commands_refuse_bad_arguments_before_doing_anything(services: Services, argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        main(argv)
    assert services.tenants.audit().items == []
