"""The OpenAPI document lists every status each route can answer, each error with the one typed body."""

from __future__ import annotations

from typing import Any

import pytest

from aijobs.api import create_app

DOCUMENT = create_app().openapi()
OPERATIONS = {f"{method.upper()} {path}": operation for path, operations in DOCUMENT["paths"].items()
              for method, operation in operations.items()}
ERROR_BODY = {"$ref": "#/components/schemas/ErrorResponse"}
OPENAI_ERROR_BODY = {"$ref": "#/components/schemas/OpenAIErrorResponse"}


def _statuses(operation: dict[str, Any]) -> set[int]:
    return {int(status) for status in operation["responses"]}


STATUSES = [
    ("GET /healthz", {200}),
    ("POST /v1/jobs", {200, 202, 400, 401, 403, 404, 409, 413, 422, 429, 500, 503}),
    ("GET /v1/jobs", {200, 401, 422, 429, 500}),
    ("POST /v1/jobs/batch", {202, 400, 401, 404, 409, 413, 422, 429, 500}),
    ("POST /v1/jobs/status", {200, 400, 401, 413, 422, 429, 500}),
    ("GET /v1/jobs/{job_id}", {200, 401, 404, 422, 429, 500}),
    ("GET /v1/jobs/{job_id}/request", {200, 401, 404, 422, 429, 500}),
    ("DELETE /v1/jobs/{job_id}", {200, 401, 404, 409, 422, 429, 500}),
    ("DELETE /v1/jobs/{job_id}/content", {200, 401, 404, 409, 422, 429, 500}),
    ("POST /v1/jobs/{job_id}/retry", {202, 401, 403, 404, 409, 422, 429, 500, 503}),
    ("GET /v1/jobs/{job_id}/stream", {200, 401, 404, 422, 429, 500}),
    ("GET /v1/batches", {200, 401, 422, 429, 500}),
    ("GET /v1/batches/{batch_id}", {200, 401, 404, 422, 429, 500}),
    ("POST /v1/batches/{batch_id}/cancel", {200, 401, 404, 409, 422, 429, 500}),
    ("GET /v1/batches/{batch_id}/results", {200, 401, 404, 422, 429, 500}),
    ("POST /v1/collections", {201, 400, 401, 409, 413, 422, 429, 500}),
    ("GET /v1/collections", {200, 401, 422, 429, 500}),
    ("GET /v1/collections/{collection_id}", {200, 401, 404, 422, 429, 500}),
    ("DELETE /v1/collections/{collection_id}", {204, 401, 404, 422, 429, 500}),
    ("POST /v1/collections/{collection_id}/documents", {202, 400, 401, 404, 409, 413, 422, 429, 500, 503}),
    ("GET /v1/collections/{collection_id}/documents", {200, 401, 404, 422, 429, 500}),
    ("GET /v1/collections/{collection_id}/documents/{document_id}", {200, 401, 404, 422, 429, 500}),
    ("DELETE /v1/collections/{collection_id}/documents/{document_id}", {204, 401, 404, 422, 429, 500}),
    ("POST /v1/collections/{collection_id}/search", {200, 202, 400, 401, 403, 404, 409, 413, 422, 429, 500, 502,
                                                     503}),
    ("GET /v1/collections/{collection_id}/queries", {200, 401, 404, 422, 429, 500}),
    ("POST /v1/schedules", {201, 400, 401, 403, 404, 409, 413, 422, 429, 500, 503}),
    ("GET /v1/schedules", {200, 401, 422, 429, 500}),
    ("GET /v1/schedules/{schedule_id}", {200, 401, 404, 422, 429, 500}),
    ("PATCH /v1/schedules/{schedule_id}", {200, 400, 401, 403, 404, 409, 413, 422, 429, 500, 503}),
    ("DELETE /v1/schedules/{schedule_id}", {204, 401, 404, 422, 429, 500, 503}),
    ("POST /v1/schedules/{schedule_id}/run", {202, 401, 403, 404, 409, 422, 429, 500, 503}),
    ("POST /v1/prompts", {201, 400, 401, 409, 413, 422, 429, 500}),
    ("GET /v1/prompts", {200, 401, 422, 429, 500}),
    ("GET /v1/prompts/{prompt_id}", {200, 401, 404, 422, 429, 500}),
    ("DELETE /v1/prompts/{prompt_id}", {204, 401, 404, 422, 429, 500}),
    ("POST /v1/prompts/{prompt_id}/versions", {201, 400, 401, 404, 409, 413, 422, 429, 500}),
    ("GET /v1/prompts/{prompt_id}/versions", {200, 401, 404, 422, 429, 500}),
    ("GET /v1/prompts/{prompt_id}/versions/{version}", {200, 401, 404, 422, 429, 500}),
    ("PUT /v1/prompts/{prompt_id}/labels/{label}", {200, 400, 401, 404, 409, 413, 422, 429, 500}),
    ("DELETE /v1/prompts/{prompt_id}/labels/{label}", {200, 401, 404, 422, 429, 500}),
    ("GET /v1/webhook-secrets", {200, 401, 429, 500}),
    ("POST /v1/webhook-secrets/rotate", {201, 400, 401, 409, 413, 422, 429, 500}),
    ("POST /v1/webhook-endpoints", {201, 400, 401, 409, 413, 422, 429, 500}),
    ("GET /v1/webhook-endpoints", {200, 401, 429, 500}),
    ("GET /v1/webhook-endpoints/{endpoint_id}", {200, 401, 404, 422, 429, 500}),
    ("DELETE /v1/webhook-endpoints/{endpoint_id}", {204, 401, 404, 422, 429, 500}),
    ("GET /v1/jobs/{job_id}/deliveries", {200, 401, 404, 422, 429, 500}),
    ("POST /v1/jobs/{job_id}/deliveries/redeliver", {202, 401, 404, 409, 422, 429, 500}),
    # The admin API: without the admin key every route is the 404 of a route that does not exist (never 401).
    ("GET /v1/admin/tenants", {200, 404, 422, 500}),
    ("POST /v1/admin/tenants/{tenant}/keys", {201, 404, 422, 500}),
    ("GET /v1/admin/tenants/{tenant}/keys", {200, 404, 422, 500}),
    ("DELETE /v1/admin/keys/{key_id}", {204, 404, 422, 500}),
    ("GET /v1/admin/tenants/{tenant}/limits", {200, 404, 422, 500}),
    ("PUT /v1/admin/tenants/{tenant}/limits", {200, 400, 404, 413, 422, 500}),
    ("DELETE /v1/admin/tenants/{tenant}", {204, 404, 422, 500, 503}),
    ("GET /v1/admin/tenants/{tenant}/usage", {200, 404, 422, 500}),
    ("GET /v1/admin/audit", {200, 404, 422, 500}),
    ("GET /v1/usage", {200, 401, 422, 429, 500}),
    # OpenAI's face: a bad request is a 400 there, in OpenAI's error shape
    ("POST /v1/responses", {200, 400, 401, 403, 404, 409, 413, 429, 500, 503, 504}),
    ("GET /v1/responses/{response_id}", {200, 400, 401, 404, 429, 500}),
    ("POST /v1/responses/{response_id}/cancel", {200, 400, 401, 404, 409, 429, 500}),
    ("GET /v1/responses/{response_id}/input_items", {200, 400, 401, 404, 429, 500}),
    ("DELETE /v1/responses/{response_id}", {200, 400, 401, 404, 409, 429, 500}),
    ("GET /v1/models", {200, 401, 429, 500}),
    ("GET /v1/models/{model_id}", {200, 400, 401, 404, 429, 500}),
    ("POST /v1/embeddings", {200, 400, 401, 403, 413, 429, 500, 502, 503, 504}),
]


@pytest.mark.parametrize(("operation", "statuses"), STATUSES)
def test_each_route_documents_the_statuses_it_can_answer(operation: str, statuses: set[int]) -> None:
    assert _statuses(OPERATIONS[operation]) == statuses


def test_every_route_is_in_the_table_above() -> None:
    assert set(OPERATIONS) == {operation for operation, _ in STATUSES}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_every_error_status_has_the_typed_error_body(operation: str) -> None:
    body = (OPENAI_ERROR_BODY if any(f" /v1/{face}" in operation for face in ("responses", "models", "embeddings"))
            else ERROR_BODY)
    for status, response in OPERATIONS[operation]["responses"].items():
        if int(status) >= 400:
            assert response["content"] == {"application/json": {"schema": body}}, status


def test_fastapis_validation_error_body_which_the_api_never_sends_is_not_documented() -> None:
    assert not {"HTTPValidationError", "ValidationError"} & set(DOCUMENT["components"]["schemas"])


def test_the_error_body_is_the_one_api_errors_sends() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    assert schemas["ErrorResponse"]["required"] == ["error"]
    assert set(schemas["ErrorBody"]["required"]) == {"type", "code", "message", "retryable", "request_id"}


def test_errors_that_say_when_to_retry_document_retry_after_and_401_www_authenticate() -> None:
    submit = OPERATIONS["POST /v1/jobs"]["responses"]
    assert "Retry-After" in submit["409"]["headers"] and "Retry-After" in submit["503"]["headers"]
    assert "WWW-Authenticate" in submit["401"]["headers"]


def test_the_admin_api_documents_the_body_it_reads_itself() -> None:
    # PUT .../limits reads its body after the admin key is checked, so FastAPI does not document it on its own.
    body = OPERATIONS["PUT /v1/admin/tenants/{tenant}/limits"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/TenantLimits"}
    assert "TenantLimits" in DOCUMENT["components"]["schemas"]
