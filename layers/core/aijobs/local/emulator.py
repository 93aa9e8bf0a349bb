"""Where moto behaves unlike AWS in ways our code depends on, and how the local stack and the tests fix it.

Real DynamoDB applies each request to an item atomically: of two conditional writes racing for one item, one
fails its condition. moto serves concurrent requests on concurrent threads (in-process under ``mock_aws``, and
in ``ThreadedMotoServer``) and checks a condition and writes the item as separate steps, so both can succeed.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

# Re-entrant: a DynamoDB action that made another DynamoDB request on the same thread must not deadlock.
_DYNAMODB_LOCK = threading.RLock()
_PATCH_LOCK = threading.Lock()
_MARK = "_aijobs_serialized"


def make_dynamodb_atomic() -> None:
    """Serialize moto's DynamoDB actions with one process-wide lock, so that conditional writes are atomic.

    Idempotent and process-wide: later calls change nothing. It wraps the one method that every DynamoDB
    request reaches, whether moto runs in-process (``mock_aws``) or as a server in this process.

    Examples
    --------
    >>> make_dynamodb_atomic()
    >>> make_dynamodb_atomic()  # a second call is a no-op
    >>> dynamodb_is_atomic()
    True
    """
    from moto.dynamodb.responses import DynamoHandler

    with _PATCH_LOCK:
        original = DynamoHandler.call_action
        if getattr(original, _MARK, False):
            return

        @functools.wraps(original)
        def call_action(self: DynamoHandler) -> Any:
            with _DYNAMODB_LOCK:
                return original(self)

        setattr(call_action, _MARK, True)
        setattr(DynamoHandler, "call_action", call_action)  # noqa: B010  (mypy refuses a method assignment)


def dynamodb_is_atomic() -> bool:
    """Whether ``make_dynamodb_atomic`` is in effect in this process."""
    from moto.dynamodb.responses import DynamoHandler

    return bool(getattr(DynamoHandler.call_action, _MARK, False))


def start_moto_server() -> Any:
    """moto as a server on 127.0.0.1 (a free port) in this process, with atomic DynamoDB; ``.stop()`` ends it."""
    import logging

    from moto.server import ThreadedMotoServer

    make_dynamodb_atomic()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    return server
