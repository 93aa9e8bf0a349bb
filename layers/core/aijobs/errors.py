"""The one exception hierarchy. Each error carries its public type; the API maps it to HTTP in one place."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from aijobs.models.common import ErrorDetail


class AijobsError(Exception):
    """Base of every error a client or a job may see.

    ``message`` is public: it never contains a prompt, an output, a secret or a stack trace.
    """

    type: ClassVar[str] = "internal"
    status: ClassVar[int] = 500
    retryable_by_default: ClassVar[bool] = False
    headers: ClassVar[dict[str, str]] = {}  # sent with the error's answer (beside Retry-After, WWW-Authenticate)

    def __init__(self, message: str, *, code: str | None = None, retry_after: int | None = None,
                 retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.type
        self.retry_after = retry_after
        self.retryable = self.retryable_by_default if retryable is None else retryable

    def detail(self) -> ErrorDetail:
        return ErrorDetail(type=self.type, code=self.code, message=self.message, retryable=self.retryable)


class InvalidRequest(AijobsError):
    type = "invalid_request"
    status = 422


class MalformedRequest(InvalidRequest):
    status = 400


class MethodNotAllowed(InvalidRequest):
    status = 405


class AuthenticationError(AijobsError):
    type = "authentication"
    status = 401


class Forbidden(AijobsError):
    """The caller may not do this (its tenant's limits say so); nothing was written."""

    type = "permission_denied"
    status = 403


class ModelNotAllowed(Forbidden):
    def __init__(self, model: str) -> None:
        # The model is the caller's own input, checked printable ASCII of at most 128 characters (JobRequest).
        super().__init__(f"the model {model} is not in this tenant's allowed_models", code="model_not_allowed")


class NotFound(AijobsError):
    type = "not_found"
    status = 404


class Conflict(AijobsError):
    type = "conflict"
    status = 409


class InProgressConflict(Conflict):
    retryable_by_default = True


class IdempotencyConflict(AijobsError):
    type = "idempotency_conflict"
    status = 422


class PayloadTooLarge(AijobsError):
    type = "payload_too_large"
    status = 413


class RateLimited(AijobsError):
    type = "rate_limited"
    status = 429
    retryable_by_default = True


class QuotaExceeded(RateLimited):
    """The tenant's daily cost budget is spent: new jobs wait for the next UTC day (``Retry-After``)."""

    type = "quota_exceeded"


class ServiceUnavailable(AijobsError):
    type = "internal"
    status = 503
    retryable_by_default = True


class ProviderError(AijobsError):
    """A model provider failure; ``retryable`` is decided per instance by the classifier."""

    type = "provider_error"
    status = 502


class ProviderTimeout(ProviderError):
    type = "provider_timeout"


class ProviderRateLimited(ProviderError):
    type = "provider_rate_limited"


class ContentFiltered(ProviderError):
    type = "content_filtered"


class OutputInvalid(AijobsError):
    """The model's output is not the JSON the job's ``response_format`` asks for (aijobs/structured.py)."""

    type = "output_invalid"
    status = 502


def _location(part: object) -> str:
    """One step of an error's location. A key the client chose (an unknown field, a metadata key) is named only
    when it is short printable text: anything else would echo input, or be unencodable (a lone surrogate)."""
    text = str(part)
    return text if len(text) <= 64 and text.isprintable() else "<key>"  # lone surrogates are not printable


def from_validation_errors(errors: Iterable[Any]) -> AijobsError:
    """The typed error for pydantic's errors: names the fields, never echoes the input."""
    errors = list(errors)
    if any(e.get("type") == "json_invalid" for e in errors):
        return MalformedRequest("the request body is not valid JSON", code="invalid_json")
    parts = []
    for error in errors[:5]:
        where = ".".join(_location(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    if any(e.get("type") == "too_large" for e in errors):
        return PayloadTooLarge("; ".join(parts), code="input_too_large")
    return InvalidRequest("; ".join(parts), code="invalid_fields")
