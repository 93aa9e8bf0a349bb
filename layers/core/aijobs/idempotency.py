"""``Idempotency-Key`` on creating POSTs, built on Powertools idempotency with its DynamoDB layer."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aijobs.errors import IdempotencyConflict, InProgressConflict, InvalidRequest

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class IdempotentAnswer:
    answer: dict[str, Any]
    replayed: bool  # the stored answer of an earlier request with the same key and body


@dataclass(frozen=True)
class RequestKey:
    """One keyed request: its ``Idempotency-Key`` (hashed, per tenant and operation) and its body's hash.

    What a keyed request creates is named by it, so a retry whose first try died after writing (and before its
    answer was recorded) finds those objects again rather than making a second set.
    """

    name: str
    body_hash: str

    @classmethod
    def of(cls, *, scope: str, key: str, body: Any) -> RequestKey:
        return cls(name=hashlib.sha256(f"{scope}#{key}".encode()).hexdigest(),
                   body_hash=hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest())


class _Replayed(dict[str, Any]):
    """An answer Powertools read back from the persistence layer rather than one the operation just made."""


def _mark_replayed(response: Any, idempotent_data: DataRecord) -> _Replayed:
    return _Replayed(response)


class Idempotency:
    """Runs a creating operation at most once per (tenant, operation, key) within the window.

    The same key with the same body replays the first answer; with another body it is an
    ``idempotency_conflict``; while the first call is still running a duplicate is a retryable conflict.
    """

    def __init__(self, *, table_name: str, expires_after_s: int, boto3_session: Any = None) -> None:
        # Loaded with the first Idempotency-Key, not with the API: most requests carry none.
        from aws_lambda_powertools.utilities.idempotency import (
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
            idempotent_function,
        )

        self._persistence = DynamoDBPersistenceLayer(table_name=table_name, boto3_session=boto3_session)
        self._config = IdempotencyConfig(event_key_jmespath="key", payload_validation_jmespath="body",
                                         expires_after_seconds=expires_after_s, response_hook=_mark_replayed)
        self._once = idempotent_function(data_keyword_argument="request", persistence_store=self._persistence,
                                         config=self._config)(self._call)

    def register_lambda_context(self, context: Any) -> None:
        self._config.register_lambda_context(context)

    @staticmethod
    def _call(request: dict[str, Any], operation: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        return operation()

    def run(self, *, scope: str, key: str, body: Any,
            operation: Callable[[RequestKey], dict[str, Any]]) -> IdempotentAnswer:
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
            IdempotencyValidationError,
        )

        # Printable ASCII, as the IETF draft's structured-field string: no control characters, nothing a header's
        # Latin-1 decoding made up.
        if not 0 < len(key) <= MAX_KEY_LENGTH or not (key.isascii() and key.isprintable()):
            raise InvalidRequest(f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable ASCII characters",
                                 code="invalid_idempotency_key")
        try:
            request_key = RequestKey.of(scope=scope, key=key, body=body)
            answer = self._once(request={"key": f"{scope}#{key}", "body": body},
                                operation=lambda: operation(request_key))
        except IdempotencyValidationError:
            raise IdempotencyConflict("this Idempotency-Key was used with another request body") from None
        except IdempotencyAlreadyInProgressError:
            raise InProgressConflict("a request with this Idempotency-Key is still in progress",
                                     code="idempotency_in_progress", retry_after=1) from None
        return IdempotentAnswer(answer=dict(answer), replayed=isinstance(answer, _Replayed))
