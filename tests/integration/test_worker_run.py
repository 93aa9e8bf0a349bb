"""The worker without SQS: ``run(job_id)`` answers what should happen to the message; time moves by the clock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from aijobs.local.stack import UvicornThread
from aijobs.local.template import LocalResources
from aijobs.models.jobs import JobRequest
from aijobs.observability import metrics
from aijobs.outcomes import DONE, RetryIn
from aijobs.services import Services
from tests.integration.conftest import TENANT_A, installed_services, run_worker


class MovableClock:
    """The real time plus whatever the test has moved it on by."""

    def __init__(self) -> None:
        import time

        self._time = time.time
        self.offset = 0.0

    def __call__(self) -> float:
        return self._time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def clocked(aws: tuple[boto3.session.Session, LocalResources], fake_model: UvicornThread,
            clock: MovableClock) -> Iterator[Services]:
    with installed_services(aws, fake_model) as svc:
        svc.clock = clock
        yield svc


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


def test_a_dead_workers_job_is_taken_over_once_the_clock_passes_its_lease(clocked: Services,
                                                                          fake_model: UvicornThread) -> None:
    job_id = _submit(clocked, "survivor by clock")
    assert clocked.store.claim_job(job_id, lease_s=clocked.settings.job_lease_s)  # a worker claimed it, then died

    assert asyncio.run(clocked.worker.run(job_id)) == DONE  # a duplicate delivery while the lease holds
    assert clocked.jobs.get_job(tenant=TENANT_A, job_id=job_id).status == "in_progress"

    clocked.clock.advance(clocked.settings.job_lease_s + 1)  # type: ignore[attr-defined]
    assert asyncio.run(clocked.worker.run(job_id)) == DONE
    job = clocked.jobs.get_job(tenant=TENANT_A, job_id=job_id)
    assert (job.status, job.attempt) == ("completed", 2) and _calls(fake_model, "survivor by clock") == 1


def test_a_finished_job_is_gone_once_the_clock_passes_its_retention(clocked: Services) -> None:
    job_id = _submit(clocked, "short-lived")
    asyncio.run(clocked.worker.run(job_id))

    clocked.clock.advance(clocked.settings.retention_s + 1)  # type: ignore[attr-defined]

    assert clocked.store.get_job(job_id) is None


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
