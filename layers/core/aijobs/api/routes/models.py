"""/v1/models: the models the caller may use, as OpenAI's API lists them (its SDK's ``client.models``).

Exact model names are listed (the default model and every name the backends' routes give in full); a model a
route's pattern (``gpt-*``) serves can be retrieved by name but not listed. A tenant limited to ``allowed_models``
sees those of them some backend serves. Errors are in OpenAI's shape, as on /v1/responses.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from aijobs.api.deps import ServicesDep, TenantDep
from aijobs.backends import listed_backend, listed_models
from aijobs.errors import NotFound
from aijobs.models.catalog import ModelInfo, ModelList
from aijobs.models.responses import OpenAIErrorResponse


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": OpenAIErrorResponse} for status in statuses}


router = APIRouter(prefix="/v1/models", tags=["models"], responses=_errors(401, 429, 500))
# A model's name may hold slashes (meta-llama/Llama-3.1-8B), as the SDK sends it.
ModelId = Annotated[str, Path(max_length=256, description="A model's name, as jobs give it in `model`")]


@router.get("", response_model=ModelList)
def list_models(tenant: TenantDep, svc: ServicesDep) -> ModelList:
    """The models the caller may use; models served by a pattern (e.g. `gpt-*`) are not listed."""
    backends = svc.model_backends
    models = listed_models(backends, default_model=svc.settings.default_model,
                           allowed=svc.tenants.limits(tenant.id).allowed_models)
    routes = [(model, backends.route(model)) for model in models]
    return ModelList(data=[ModelInfo(id=model, owned_by=route.backend) for model, route in routes if route])


@router.get("/{model_id:path}", response_model=ModelInfo, responses=_errors(400, 404))
def retrieve_model(model_id: ModelId, tenant: TenantDep, svc: ServicesDep) -> ModelInfo:
    """A model the caller may use, listed or served by a pattern; 404 `model_not_found` for any other."""
    backend = listed_backend(svc.model_backends, model_id, default_model=svc.settings.default_model,
                             allowed=svc.tenants.limits(tenant.id).allowed_models)
    if backend is None:
        raise NotFound("no such model", code="model_not_found")
    return ModelInfo(id=model_id, owned_by=backend)
