"""boto3's DynamoDB resource, its ``Key``/``Attr`` conditions built safely by many threads at once.

The resource's client has one condition builder, whose placeholder counters every request resets. The worker's
``asyncio.to_thread`` calls, and the local stack's threads, share one resource: a request on another thread while a
condition was being built restarted its counters in the middle, so two of its names got the same placeholder
(``#n0`` for both ``pk`` and ``sk``: moto's "Query condition missed key schema element: pk"; a filter could read
the wrong attribute). Here the counters are kept per thread.
"""

from __future__ import annotations

import threading
from typing import Any

from boto3.dynamodb.conditions import ConditionExpressionBuilder
from boto3.dynamodb.transform import TransformationInjector

# where boto3's resource registers its condition injector (boto3/dynamodb/transform.py)
_EVENT, _HANDLER = "before-parameter-build.dynamodb", "dynamodb-condition-expression"


def _per_thread(name: str) -> property:
    """A counter of the builder's, kept per thread."""
    return property(lambda self: getattr(self._counts, name, 0), lambda self, value: setattr(self._counts, name, value))


class _ThreadBuilder(ConditionExpressionBuilder):
    """boto3's builder with its placeholder counters kept per thread."""

    _name_count = _per_thread("names")
    _value_count = _per_thread("values")

    def __init__(self) -> None:
        self._counts = threading.local()
        super().__init__()


def thread_safe(resource: Any) -> Any:
    """``resource`` with its client's condition injector replaced by one whose builder counts per thread."""
    injector = TransformationInjector(condition_builder=_ThreadBuilder())
    events = resource.meta.client.meta.events
    events.unregister(_EVENT, unique_id=_HANDLER)
    events.register_first(_EVENT, injector.inject_condition_expressions, unique_id=_HANDLER)  # before the values
    return resource
