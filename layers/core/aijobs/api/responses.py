"""The error statuses of the routes, for the OpenAPI document: every one has the one typed body of api/errors.py.

Each router lists what all of its routes can answer (``errors(401, 500)``); each route adds its own.
"""

from __future__ import annotations

from typing import Any

from aijobs.models.common import ErrorResponse

_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again, when the error knows",
                                "schema": {"type": "integer"}}}

_ERRORS: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("The body is not valid JSON (`invalid_json`)", {}),
    401: ("No API key, or one that is not valid (`missing_api_key`, `invalid_api_key`)",
          {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}),
    403: ("The tenant's limits do not allow this: a model not in its `allowed_models` (`model_not_allowed`)", {}),
    404: ("No such job, schedule or prompt for this tenant (a job's `prompt`: `prompt_not_found`, "
          "`prompt_version_not_found`, `prompt_label_not_found`)", {}),
    409: ("A conflict: a request with the same Idempotency-Key still in progress, or a state that does not allow "
          "this now; `retryable` says whether trying again may help", _RETRY_AFTER),
    413: ("The body is over the limit (`body_too_large`), or input and instructions are (`input_too_large`)", {}),
    422: ("Invalid fields, named in the message (`invalid_fields`), or a value the operation cannot accept "
          "(e.g. `invalid_cursor`, `invalid_expression`, `callback_url_forbidden`, `idempotency_conflict`, "
          "`prompt_variables` naming the missing and unexpected variables of a job's `prompt`)", {}),
    429: ("Too many requests of a kind: the tenant's request rate (`requests_per_minute`) or token rate "
          "(`tokens_per_minute`; not retryable for a job larger than the whole minute), failed authentications from "
          "this address (`too_many_failed_authentications`), redeliveries of one job (`too_many_redeliveries`)",
          _RETRY_AFTER),
    500: ("An error nobody planned for; it is logged with the request id", {}),
    502: ("The model provider failed a call made while answering (a search embeds its query): `provider_error`, "
          "`provider_timeout`, `provider_rate_limited`; `retryable` says whether trying again may help", {}),
    503: ("A service behind the API is unavailable; try again", _RETRY_AFTER),
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for these error statuses."""
    return {status: {"model": ErrorResponse, "description": _ERRORS[status][0],
                     **({"headers": _ERRORS[status][1]} if _ERRORS[status][1] else {})} for status in statuses}
