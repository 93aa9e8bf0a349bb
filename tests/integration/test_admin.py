from __future__ import annotations

from typing import Any

import pytest

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
