"""The fault suite: one test per fault family, each variant a scenario of tests/fault_scenarios.py run to its end
on the services' clock. Whatever the fault, every job ends exactly once, the model runs at most once per attempt
(once for a first-try success), and each final event reaches a working receiver exactly once; the scenario's
report lists every way it did not. bench/reliability.py runs the same scenarios for the reliability table."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from aijobs.local.server_process import UvicornThread
from aijobs.local.template import LocalResources
from tests.fault_scenarios import SCENARIOS, Deployed, Scenario, run_scenario

DEPLOYED = Deployed.load()


def _of(family: str) -> Any:
    return pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s.family == family], ids=lambda s: s.name)


def _run(scenario: Scenario, aws: tuple[boto3.session.Session, LocalResources], fake_model: UvicornThread) -> None:
    report = run_scenario(scenario, aws, fake_model, DEPLOYED)
    assert report.violations == []
    assert (report.lost, report.doubled) == (0, 0)
    if report.recovery.seconds is not None and report.simulated_s is not None:
        # The rig's clock agrees with the formula (its sweep phase is one of those the formula bounds).
        assert report.simulated_s <= report.recovery.seconds + 10, report.recovery.formula


@_of("duplicates x5")
def test_a_job_delivered_five_times_runs_once_and_sends_one_webhook(scenario: Scenario, aws: Any,
                                                                    fake_model: UvicornThread) -> None:
    _run(scenario, aws, fake_model)


@_of("worker killed")
def test_a_job_whose_worker_dies_is_taken_over_after_its_lease_and_ends_once(scenario: Scenario, aws: Any,
                                                                           fake_model: UvicornThread) -> None:
    _run(scenario, aws, fake_model)


@_of("crash between send and store")
def test_a_submission_that_crashes_between_send_and_store_leaves_nothing_and_its_retry_makes_one_set(
        scenario: Scenario, aws: Any, fake_model: UvicornThread) -> None:
    _run(scenario, aws, fake_model)


@_of("crash before the answer")
def test_a_keyed_submission_that_dies_before_its_answer_is_retried_into_the_same_jobs(
        scenario: Scenario, aws: Any, fake_model: UvicornThread) -> None:
    _run(scenario, aws, fake_model)


@_of("SQS send errors")
def test_a_failed_sqs_send_loses_no_job_and_no_webhook(scenario: Scenario, aws: Any,
                                                     fake_model: UvicornThread) -> None:
    _run(scenario, aws, fake_model)


@_of("provider")
def test_a_failing_provider_is_retried_within_the_attempts_and_ends_the_job_once(scenario: Scenario, aws: Any,
                                                                               fake_model: UvicornThread) -> None:
    _run(scenario, aws, fake_model)


@_of("poison")
def test_poison_in_a_batch_of_ten_disturbs_none_of_the_others(scenario: Scenario, aws: Any,
                                                            fake_model: UvicornThread) -> None:
    _run(scenario, aws, fake_model)


@_of("webhook receiver")
def test_a_failing_receiver_gets_each_event_once_it_works_and_the_ledger_shows_every_try(
        scenario: Scenario, aws: Any, fake_model: UvicornThread) -> None:
    _run(scenario, aws, fake_model)


@_of("idempotency")
def test_concurrent_posts_with_one_idempotency_key_make_one_job(scenario: Scenario, aws: Any,
                                                                fake_model: UvicornThread) -> None:
    _run(scenario, aws, fake_model)
