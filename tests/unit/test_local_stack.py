"""The local stack reads template.yaml, and the fake model follows its directives."""

from __future__ import annotations

from typing import Any

import pytest

from aijobs.local.fake_model import _directives, _reply_words
from aijobs.local.stack import parse_dev_keys, poller_concurrency
from aijobs.local.template import ROOT, LocalResources, function_environment, sqs_sources


def test_function_environment_resolves_refs_to_the_local_resources(template: dict[str, Any]) -> None:
    created = LocalResources(refs={"JobsTable": "t-jobs", "IdempotencyTable": "t-idem", "JobsQueue": "http://q"})
    env = function_environment(template, created, "WorkerFunction")
    assert env["AIJOBS_JOBS_TABLE"] == "t-jobs"
    assert env["AIJOBS_JOBS_QUEUE_URL"] == "http://q"
    assert env["AIJOBS_DEFAULT_MODEL"] == "gpt-4o-mini"  # the parameter's default
    assert "AIJOBS_MODEL_API_KEY_SECRET_ARN" not in env  # empty by default


def test_dev_keys_parse_tenant_key_pairs() -> None:
    assert parse_dev_keys("a:ka, b:kb") == {"ka": "a", "kb": "b"}
    generated = parse_dev_keys(None)
    assert list(generated.values()) == ["dev"]


def test_malformed_dev_keys_stop_the_stack() -> None:
    with pytest.raises(SystemExit):
        parse_dev_keys("no-colon")


def test_fake_model_directives() -> None:
    assert _directives("x [[delay_ms=20]] [[fail=429,times=2]] [[tokens=5]]") == {
        "delay_ms": "20", "fail": "429,times=2", "tokens": "5"}


def test_fake_model_reply_echoes_the_input_and_honours_lengths() -> None:
    assert _reply_words("hello there", None, None) == (["Echo:", "hello", "there"], "stop")
    assert len(_reply_words("hi", 50, None)[0]) == 50
    assert _reply_words("a b c d", None, 2) == (["Echo:", "a"], "length")


def test_the_local_stack_polls_every_sqs_event_source_of_the_template(template: dict[str, Any]) -> None:
    sources = {(s.function, s.queue) for s in sqs_sources(template)}
    assert {("WorkerFunction", "JobsQueue"), ("WebhookFunction", "DeliveriesQueue")} <= sources
    for source in sqs_sources(template):
        app = (ROOT / "functions" / source.code_dir / "app.py").read_text()
        assert f"def {source.handler}(" in app and source.batch_size >= 10


def test_the_local_stack_runs_as_many_deliveries_consumers_as_lambda_may(template: dict[str, Any]) -> None:
    sources = {s.function: s for s in sqs_sources(template)}
    most = template["Parameters"]["WebhookMaximumConcurrency"]["Default"]
    assert poller_concurrency(sources["WebhookFunction"], {}) == sources["WebhookFunction"].max_concurrency == most
    assert poller_concurrency(sources["WorkerFunction"], {}) == 2  # each job calls the model: kept small here
    assert poller_concurrency(sources["WorkerFunction"], {"AIJOBS_LOCAL_WORKER_CONCURRENCY": "4"}) == 4
