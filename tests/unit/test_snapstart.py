"""SnapStart's hooks (aijobs/snapstart.py) and the models they build: a cold start builds only the models it uses,
and a snapshot holds every model its function imported, built."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import BaseModel

import aijobs
from aijobs import snapstart
from aijobs.models.common import Model

ROOT = Path(__file__).resolve().parents[2]


def test_before_the_snapshot_the_warm_hook_runs_and_every_imported_model_is_built(
        monkeypatch: pytest.MonkeyPatch) -> None:
    hooks: dict[str, Callable[[], object]] = {}
    runtime = types.ModuleType("snapshot_restore_py")
    runtime.register_before_snapshot = lambda f: hooks.setdefault("before", f)  # type: ignore[attr-defined]
    runtime.register_after_restore = lambda f: hooks.setdefault("after", f)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", runtime)

    class Imported(Model):
        name: str

    class Nested(Imported):
        size: int

    warmed: list[bool] = []
    assert snapstart.register(lambda: warmed.append(True))
    assert not Imported.__pydantic_complete__ and not Nested.__pydantic_complete__  # deferred until first use
    hooks["before"]()
    assert warmed == [True]
    assert Imported.__pydantic_complete__ and Nested.__pydantic_complete__
    assert hooks["after"] is snapstart.renew


def test_without_the_lambda_runtime_nothing_is_registered() -> None:
    assert "snapshot_restore_py" not in sys.modules
    assert snapstart.register(lambda: None) is False


def test_every_model_of_aijobs_defers_its_build() -> None:
    from aijobs.api import create_app

    create_app()  # every route module, with its models
    pending, plain = list(BaseModel.__subclasses__()), []
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        if model.__module__.startswith("aijobs.") and not issubclass(model, Model):
            plain.append(f"{model.__module__}.{model.__qualname__}")
    assert plain == []


_SCHEDULER_COLD_START = """
import json, sys
sys.path.insert(0, sys.argv[1])
import app
from aijobs.models.common import Model

def built():
    pending, names = [Model], []
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        if model is not Model and model.__pydantic_complete__:
            names.append(model.__name__)
    return sorted(names)

after_import = built()
app.ScheduledFire.model_validate({"schedule_id": "sch_01JAAAAAAAAAAAAAAAAAAAAAAA", "tenant": "tenant-a",
                               "scheduled_time": "2026-12-04T00:00:00Z"})
print(json.dumps({"after_import": after_import, "after_use": built()}))
"""


def test_a_cold_start_builds_only_the_models_it_uses() -> None:
    env = {"PATH": "", "AWS_DEFAULT_REGION": "us-east-1", "AIJOBS_JOBS_TABLE": "jobs",
           "AIJOBS_IDEMPOTENCY_TABLE": "idempotency", "AIJOBS_JOBS_QUEUE_URL": "https://sqs.invalid/1/jobs",
           "AIJOBS_MODEL_BASE_URL": "http://127.0.0.1:9/v1", "PYTHONPATH": str(Path(aijobs.__file__).parents[1])}
    out = subprocess.run([sys.executable, "-c", _SCHEDULER_COLD_START, str(ROOT / "functions" / "scheduler")],
                         env=env, capture_output=True, text=True, check=True, timeout=60)
    built = json.loads(out.stdout)
    # The settings are validated at cold start; the job models the scheduler imports wait for a fire that uses them.
    assert built["after_import"] == ["Settings"]
    assert "ScheduledFire" in built["after_use"] and "JobOut" not in built["after_use"]


def test_the_routes_validators_built_at_first_use_warn_nothing() -> None:
    # The routes' body validators wrap deferred models, so they are built at first use (here, for the OpenAPI
    # document, as ApiFunction's SnapStart hook does), outside the filter FastAPI puts around their making.
    code = ("import warnings\nfrom pydantic.warnings import UnsupportedFieldAttributeWarning\n"
            "warnings.simplefilter('error', UnsupportedFieldAttributeWarning)\n"
            "from aijobs.api import create_app\ncreate_app().openapi()")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60,
                   env={"PATH": "", "PYTHONPATH": str(Path(aijobs.__file__).parents[1])})
