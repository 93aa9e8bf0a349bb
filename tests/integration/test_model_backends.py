"""Several model backends through the real handlers on moto: a job whose backend is down falls back to the fake
model and records who served it, priced at the model that answered; the backends' keys come from Secrets Manager,
read once per process; ``GET /v1/models`` answers the openai SDK's ``models.list()`` and ``models.retrieve()``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import openai
import pytest

from aijobs.local.server_process import UvicornThread
from aijobs.local.stack import free_port, load_handler
from aijobs.local.template import LocalResources
from aijobs.pricing import estimate_cost
from aijobs.services import Services
from tests.integration.conftest import KEY_A, TENANT_A, api_client, installed_services, run_worker


def _backends(fake_url: str, secret_arn: str) -> str:
    return json.dumps({
        "backends": {"fake": {"base_url": f"{fake_url}/v1", "api_key_secret_arn": secret_arn},
                     "down": {"base_url": f"http://127.0.0.1:{free_port()}/v1"}},  # nobody listens there
        "models": [{"model": "fake-model", "backend": "fake"},
                   {"model": "gpt-4o", "backend": "down", "fallback": ["gpt-4o-mini"]},
                   {"model": "gpt-4o-mini", "backend": "fake"},
                   {"model": "llama-*", "backend": "down"},
                   {"model": "text-embedding-3-large", "backend": "down", "fallback": ["text-embedding-3-small"]},
                   {"model": "text-embedding-*", "backend": "fake"}],
    })


@pytest.fixture
def worker_handler() -> Any:
    """The worker's handler imported (as Lambda would) once the test's services are installed: it keeps those."""
    return lambda event, context: load_handler("worker", "lambda_handler")(event, context)


@pytest.fixture
def routed(aws: tuple[boto3.session.Session, LocalResources], fake_model: UvicornThread) -> Iterator[Services]:
    session, _ = aws
    arn = session.client("secretsmanager").create_secret(Name=f"aijobs/{uuid.uuid4()}", SecretString="fake-key")["ARN"]
    with installed_services(aws, fake_model, model_backends=_backends(fake_model.url, arn)) as svc:
        yield svc


def _run(svc: Services, worker_handler: Any, model: str, prompt: str = "route me") -> dict[str, Any]:
    with api_client() as api:
        job = api.post("/v1/jobs", json={"input": prompt, "model": model}).json()
        run_worker(svc, worker_handler)
        return dict(api.get(f"/v1/jobs/{job['id']}").json())


def test_a_job_whose_backend_is_down_falls_back_records_who_served_it_and_is_priced_at_that_model(
        routed: Services, worker_handler: Any) -> None:
    job = _run(routed, worker_handler, "gpt-4o")

    assert job["status"] == "completed" and job["output"]["text"] == "Echo: route me"
    assert (job["model"], job["provider_model"], job["backend"]) == ("gpt-4o", "gpt-4o-mini", "fake")
    usage = job["usage"]
    served = estimate_cost("gpt-4o-mini", input_tokens=usage["input_tokens"], output_tokens=usage["output_tokens"])
    asked = estimate_cost("gpt-4o", input_tokens=usage["input_tokens"], output_tokens=usage["output_tokens"])
    assert Decimal(str(job["cost_usd"])) == served.cost_usd != asked.cost_usd


def test_an_embedding_job_falls_back_the_same_way_and_is_priced_at_the_model_that_answered(
        routed: Services, worker_handler: Any) -> None:
    with api_client() as api:
        job_id = api.post("/v1/jobs", json={"kind": "embedding", "model": "text-embedding-3-large",
                                             "input": ["one text", "another"], "dimensions": 8}).json()["id"]
        run_worker(routed, worker_handler)
        job = api.get(f"/v1/jobs/{job_id}").json()

    assert job["status"] == "completed", job["error"]
    assert (job["model"], job["provider_model"], job["backend"]) == ("text-embedding-3-large",
                                                                     "text-embedding-3-small", "fake")
    tokens = job["usage"]["input_tokens"]
    assert job["cost_usd"] == pytest.approx(tokens * 0.02 / 1e6)  # -3-small's price, not -3-large's ($0.13)


def test_a_job_served_by_its_own_backend_records_it(routed: Services, worker_handler: Any) -> None:
    job = _run(routed, worker_handler, "fake-model")

    assert (job["status"], job["provider_model"], job["backend"]) == ("completed", "fake-model", "fake")


def test_a_job_whose_backend_is_down_without_fallback_goes_back_to_the_queue(
        routed: Services, worker_handler: Any) -> None:
    job = _run(routed, worker_handler, "llama-3")

    assert (job["status"], job["attempt"], job["backend"]) == ("queued", 1, None)


def test_the_backends_keys_are_read_once_per_process(aws: tuple[boto3.session.Session, LocalResources],
                                                     fake_model: UvicornThread, worker_handler: Any) -> None:
    session, _ = aws
    arn = session.client("secretsmanager").create_secret(Name=f"aijobs/{uuid.uuid4()}", SecretString="fake-key")["ARN"]
    reads: list[str] = []
    session.events.register("before-parameter-build.secrets-manager.GetSecretValue",
                            lambda params, **_: reads.append(params["SecretId"]))
    with installed_services(aws, fake_model, model_backends=_backends(fake_model.url, arn)) as svc:
        first = _run(svc, worker_handler, "fake-model", "one")
        second = _run(svc, worker_handler, "gpt-4o", "two")

    assert first["status"] == second["status"] == "completed"
    assert reads == [arn]


@pytest.fixture
def sdk(routed: Services) -> Iterator[openai.OpenAI]:
    from aijobs.api import create_app

    live = UvicornThread(create_app(), free_port())
    live.start()
    try:
        with openai.OpenAI(base_url=f"{live.url}/v1", api_key=KEY_A, max_retries=0, timeout=30) as client:
            yield client
    finally:
        live.stop()


def test_the_sdk_lists_the_exact_model_names_and_retrieves_one_a_pattern_serves(sdk: openai.OpenAI) -> None:
    listed = sdk.models.list()

    assert [(m.id, m.object, m.owned_by) for m in listed.data] == [
        ("fake-model", "model", "fake"), ("gpt-4o", "model", "down"), ("gpt-4o-mini", "model", "fake"),
        ("text-embedding-3-large", "model", "down")]
    assert sdk.models.retrieve("llama-3.1-8b").owned_by == "down"  # served by llama-*, not listed
    assert sdk.models.retrieve("gpt-4o").id == "gpt-4o"


def test_an_unknown_model_is_the_sdks_not_found_error(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        sdk.models.retrieve("no-such-model")

    assert raised.value.code == "model_not_found"


def test_a_tenant_limited_to_some_models_sees_only_those_served(routed: Services, sdk: openai.OpenAI) -> None:
    from aijobs.models.tenants import TenantLimits

    routed.tenants.set_limits(TENANT_A, TenantLimits(allowed_models=["gpt-4o", "mistral"]))

    assert [m.id for m in sdk.models.list().data] == ["gpt-4o"]
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("fake-model")
