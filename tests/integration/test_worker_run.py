"""The worker without SQS: ``run(job_id)`` answers what should happen to the message; and its metrics."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from aijobs.local.server_process import UvicornThread
from aijobs.models.jobs import JobRequest
from aijobs.observability import metrics
from aijobs.outcomes import DONE, RetryIn
from aijobs.services import Services
from tests.integration.conftest import TENANT_A, run_worker


def _submit(svc: Services, prompt: str) -> str:
    return svc.jobs.submit_job(tenant=TENANT_A, request=JobRequest(input=prompt)).id


def _calls(fake_model: UvicornThread, prompt: str) -> int:
    return int(fake_model.server.config.app.state.calls[f"prompt:{prompt}"])


def test_a_job_runs_by_id_alone(services: Services) -> None:
    job_id = _submit(services, "run me by id")

    assert asyncio.run(services.worker.run(job_id)) == DONE

    job = services.jobs.get_job(tenant=TENANT_A, job_id=job_id)
    assert job.status == "completed" and job.output_text == "Echo: run me by id"


def test_a_finished_job_is_not_run_again(services: Services, fake_model: UvicornThread) -> None:
    job_id = _submit(services, "only once by id")
    asyncio.run(services.worker.run(job_id))

    assert asyncio.run(services.worker.run(job_id)) == DONE
    assert _calls(fake_model, "only once by id") == 1


def test_a_rate_limited_job_asks_to_come_back_no_sooner_than_the_provider_said(services: Services) -> None:
    job_id = _submit(services, "busy by id [[fail=429,times=1]]")

    outcome = asyncio.run(services.worker.run(job_id))

    assert isinstance(outcome, RetryIn) and outcome.seconds >= 0
    assert services.jobs.get_job(tenant=TENANT_A, job_id=job_id).status == "queued"
    assert asyncio.run(services.worker.run(job_id)) == DONE


def test_the_worker_emits_its_metrics_when_the_invocation_ends(services: Services, worker_handler: Any,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    _submit(services, "counted")
    _submit(services, "refused [[fail=400]]")
    metrics.clear_metrics()  # what earlier tests counted outside a handler; an invocation starts empty on Lambda
    capsys.readouterr()

    run_worker(services, worker_handler)

    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    completed = [b for b in blobs if "JobsCompleted" in b]
    failed = [b for b in blobs if "JobsFailed" in b]
    assert completed and completed[0]["JobsCompleted"] in (1.0, [1.0])
    assert failed and failed[0]["error_type"] == "provider_error"
    assert all(b["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "aijobs" for b in blobs)
