"""The one logger and the one metrics emitter of every function (Powertools: JSON logs, CloudWatch EMF metrics).

Handlers are decorated with ``logger.inject_lambda_context`` and ``metrics.log_metrics``: the Lambda context goes
into every log line and the metrics of an invocation are flushed when it returns (the streaming front, which has no
Lambda handler of its own, flushes them when each request is over: functions/stream/app.py).

Keys that belong to one request or one job go in with ``log_context`` (a context variable), never with
``append_keys`` on the shared logger, so concurrent requests and jobs in one process never see each other's keys.

Logs and metrics never carry a prompt, an output or a secret.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.logging.formatter import THREAD_LOCAL_KEYS
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

SERVICE = "aijobs"
NAMESPACE = "aijobs"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


@contextmanager
def log_context(**keys: object) -> Iterator[None]:
    """Add ``keys`` to the log lines written in this context (this task, and the threads it hands work to)."""
    token = THREAD_LOCAL_KEYS.set({**THREAD_LOCAL_KEYS.get(), **keys})
    try:
        yield
    finally:
        THREAD_LOCAL_KEYS.reset(token)


def count(name: str, value: float = 1, **dimensions: str) -> None:
    """Count ``name`` (e.g. ``JobsCompleted``); with dimensions (e.g. ``error_type``) it is emitted at once.

    Without dimensions the count joins the invocation's metric set, flushed by ``metrics.log_metrics``.
    Nothing is recorded where metrics are disabled (``POWERTOOLS_METRICS_DISABLED``, as in the local stack).
    """
    if is_metrics_disabled():
        return
    if not dimensions:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        return
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=NAMESPACE,
                       default_dimensions={"service": SERVICE, **dimensions}):
        pass
