"""Fuzzing: schemathesis sends generated requests, valid and invalid, to every operation of the app's own OpenAPI
document, in-process (no socket) on moto as tenant A, and checks every answer against that document.

No input may answer a 5xx, and every answer must be one the document lists for its route, with that status's
content type and body schema. Path ids are sometimes those of a real job (finished, with a webhook) and schedule of
the tenant, so the routes are exercised past their 404s. Bounded and repeatable: a fixed number of examples per
operation, derandomized, no example database. Inputs that once answered 500 have their own tests in
test_api_edges.py: few of them turn up in so few examples.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from aijobs.api import create_app
from aijobs.models.jobs import JobRequest
from aijobs.models.schedules import ScheduleRequest
from aijobs.services import Services
from tests.integration.conftest import KEY_A, TENANT_A, run_worker

EXAMPLES_PER_OPERATION = 12
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]

schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())

# Stand-ins a generated path id is sometimes replaced with; each example swaps them for the real ids.
EXISTING = {"job_id": "existing-job", "schedule_id": "existing-schedule"}  # URL-safe: sent unescaped


@schema.hook
def before_generate_path_parameters(context: Any, strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    def existing(parameters: Any) -> Any:
        if not isinstance(parameters, dict):
            return parameters
        return {name: EXISTING.get(name, value) for name, value in parameters.items()}

    return st.one_of(strategy, strategy.map(existing))


# Fields no random text ever makes valid: sometimes a valid value, so that requests get past validation to the
# stores with whatever else was generated (where a DynamoDB limit once made a 500).
PLAUSIBLE = {
    "expression": st.sampled_from(["rate(5 minutes)", "cron(0 9 ? * MON-FRI *)", "at(2030-01-31T09:30:00)"]),
    "timezone": st.sampled_from(["UTC", "Europe/Paris"]),
    "callback_url": st.just("https://receiver.example/hook"),
}


def _plausible(body: Any) -> st.SearchStrategy[Any]:
    if not isinstance(body, dict):
        return st.just(body)
    replacements = {name: PLAUSIBLE[name] for name in body if name in PLAUSIBLE}
    if isinstance(body.get("job"), dict):
        replacements["job"] = _plausible(body["job"])
    return st.fixed_dictionaries(replacements).map(lambda changed: {**body, **changed})


@schema.hook
def before_generate_body(context: Any, strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, strategy.flatmap(_plausible))


@pytest.fixture
def existing(services: Services, worker_handler: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A finished job with a webhook and a schedule of tenant A, by the stand-ins that name them."""
    monkeypatch.setattr("aijobs.api.routes.jobs.WAIT_LIMIT_S", 0)  # no worker runs while fuzzing: waits only sleep
    # ...and a response waited for (background: false) or streamed would only wait: answered at once instead (the
    # 504 that says to use background mode, below; a stream closed after what is there)
    monkeypatch.setattr(services.settings, "sync_wait_s", 0)
    monkeypatch.setattr(services.settings, "stream_max_s", 0)
    job = services.jobs.submit_job(tenant=TENANT_A, request=JobRequest(
        input="fuzz", callback_url="https://receiver.example/hook"))
    run_worker(services, worker_handler)
    schedule = services.schedules.create_schedule(tenant=TENANT_A, request=ScheduleRequest(
        expression="rate(1 hour)", job=JobRequest(input="fuzz")))
    return {EXISTING["job_id"]: job.id, EXISTING["schedule_id"]: schedule.id}


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
          # one moto world per operation, shared by its examples on purpose (what one creates, another finds)
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_no_input_is_a_server_error_and_every_answer_is_documented(case: Any, existing: dict[str, str]) -> None:
    if case.path_parameters:
        case.path_parameters = {name: existing.get(value, value) if isinstance(value, str) else value
                                for name, value in case.path_parameters.items()}

    response = case.call(headers={"Authorization": f"Bearer {KEY_A}"})

    checks = CHECKS
    if response.status_code == 504 and response.json()["error"]["code"] == "response_timeout":
        # A response waited for (background: false) while no worker runs: its documented 504, by design
        checks = [check for check in CHECKS if check is not not_a_server_error]
    case.validate_response(response, checks=checks)
