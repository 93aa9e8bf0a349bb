"""AWS faults injected through botocore's event hooks: the code under test makes its real calls and gets the
exceptions botocore would raise, without a mock of our own objects."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError

from aijobs.services import Services

SQS_SENDS = ("SendMessage", "SendMessageBatch")


def unreachable(client: Any) -> Exception:
    """What botocore raises when the service's endpoint cannot be reached (after its own retries)."""
    return EndpointConnectionError(endpoint_url=client.meta.endpoint_url)


def client_error(code: str, operation: str) -> Exception:
    """An error answer of the service, e.g. ``ThrottlingException`` or ``InternalServerError``."""
    return ClientError({"Error": {"Code": code, "Message": "injected failure"}}, operation)


def register_hooks(events: Any, hooks: list[tuple[str, Any]]) -> Callable[[], None]:
    """Register botocore hooks; returns what unregisters them."""
    for name, hook in hooks:
        events.register(name, hook)

    def remove() -> None:
        for name, hook in hooks:
            events.unregister(name, hook)
    return remove


def fail_calls(client: Any, *operations: str, error: Callable[[str], BaseException],
               when: Callable[[dict[str, Any]], bool] = lambda params: True) -> Callable[[], None]:
    """Make the client's calls of ``operations`` raise ``error(operation)`` while ``when(params)`` holds.

    The hook runs before the request is built, on the call's own parameters. Returns the function that
    removes the hooks; the client is otherwise untouched. ``error`` may be a ``BaseException`` that stands for
    the process dying at that call.
    """
    service = client.meta.service_model.service_id.hyphenize()
    handlers = []
    for operation in operations:
        def fail(params: dict[str, Any], operation: str = operation, **_: Any) -> None:
            if when(params):
                raise error(operation)

        handlers.append((f"before-parameter-build.{service}.{operation}", fail))
    return register_hooks(client.meta.events, handlers)


def fail_after_calls(client: Any, *operations: str, error: Callable[[str], BaseException],
                     when: Callable[[int], bool] = lambda n: True) -> Callable[[], None]:
    """Make the client's calls of ``operations`` raise ``error(operation)`` after the service has done them:
    the write happened, its caller never hears so (a process that dies right after a call, a lost answer).

    ``when(n)`` is asked with the number of such calls so far (1 for the first). Returns the remover.
    """
    service = client.meta.service_model.service_id.hyphenize()
    calls = {"n": 0}
    handlers = []
    for operation in operations:
        def fail(http_response: Any, operation: str = operation, **_: Any) -> None:
            if http_response.status_code < 300:
                calls["n"] += 1
                if when(calls["n"]):
                    raise error(operation)

        handlers.append((f"after-call.{service}.{operation}", fail))
    return register_hooks(client.meta.events, handlers)


@contextmanager
def sqs_down(services: Services, *, queue_url: str | None = None,
             error: Callable[[str], Exception] | None = None) -> Iterator[None]:
    """SQS cannot be reached for sends (to ``queue_url`` only, if given) until the block ends.

    The hooks go on the services' SQS client, which every queue of ``services`` sends with. Not on the
    session: a client made from it inside the block would keep a copy of them after the block.
    ``error`` defaults to the ``EndpointConnectionError`` of an endpoint that cannot be reached.

    Examples
    --------
    >>> with sqs_down(services, queue_url=services.settings.deliveries_queue_url):
    ...     run_worker(services, worker_handler)  # the job completes; its webhook cannot be queued
    """
    client = services.sqs
    remove = fail_calls(client, *SQS_SENDS, error=error or (lambda operation: unreachable(client)),
                        when=lambda params: queue_url is None or params.get("QueueUrl") == queue_url)
    try:
        yield
    finally:
        remove()
