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


class _ThreadBuilder(ConditionExpressionBuilder):
    """boto3's builder with its placeholder counters kept per thread."""

    def __init__(self) -> None:
        self._counts = threading.local()
        super().__init__()

    @property
    def _name_count(self) -> int:
        return getattr(self._counts, "names", 0)

    @_name_count.setter
    def _name_count(self, value: int) -> None:
        self._counts.names = value

    @property
    def _value_count(self) -> int:
        return getattr(self._counts, "values", 0)

    @_value_count.setter
    def _value_count(self, value: int) -> None:
        self._counts.values = value


def thread_safe(resource: Any) -> Any:
    """``resource`` with its client's condition injector replaced by one whose builder counts per thread."""
    injector = TransformationInjector(condition_builder=_ThreadBuilder())
    events = resource.meta.client.meta.events
    events.unregister(_EVENT, unique_id=_HANDLER)
    events.register_first(_EVENT, injector.inject_condition_expressions, unique_id=_HANDLER)  # before the values
    return resource
