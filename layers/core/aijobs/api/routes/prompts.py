"""/v1/prompts: the prompt registry. Prompts, their immutable versions, and labels that point at versions (or split
jobs between versions by weight); jobs name them with ``prompt: {id, version | label, variables}``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from aijobs.api.deps import (
    Cursor,
    IdempotentDep,
    LabelPath,
    PromptIdPath,
    PromptsDep,
    TenantDep,
    VersionPath,
    created,
)
from aijobs.api.responses import errors
from aijobs.models.prompts import (
    LabelTarget,
    PromptList,
    PromptOut,
    PromptRequest,
    PromptVersionList,
    PromptVersionOut,
    VersionRequest,
)

router = APIRouter(prefix="/v1/prompts", tags=["prompts"], responses=errors(401, 429, 500))


@router.post("", status_code=201, response_model=PromptOut, responses=errors(400, 409, 413, 422))
def create_prompt(body: PromptRequest, tenant: TenantDep, prompts: PromptsDep,
                  idempotent: IdempotentDep) -> JSONResponse:
    """Create a prompt and its version 1 (instructions and/or a template of messages with `{{variables}}`, an
    optional model and parameters); `labels` point at version 1."""
    result = idempotent.run("create_prompt", body=body.model_dump(mode="json", exclude_unset=True), create=lambda _: (
        prompts.to_public(prompts.create_prompt(tenant=tenant.id, request=body), with_latest=True).model_dump(
            mode="json")))
    return created(result, status_code=201, location=f"/v1/prompts/{result.answer['id']}")


@router.get("", response_model=PromptList, responses=errors(422))
def list_prompts(tenant: TenantDep, prompts: PromptsDep, cursor: Cursor = None,
                 limit: Annotated[int, Query(ge=1, le=100)] = 20) -> PromptList:
    """The caller's prompts, newest first; follow `next_cursor` until it is null, which is the end."""
    page = prompts.list_prompts(tenant=tenant.id, limit=limit, cursor=cursor)
    return PromptList(data=[prompts.to_public(p) for p in page.items], next_cursor=page.next_cursor)


@router.get("/{prompt_id}", response_model=PromptOut, responses=errors(404, 422))
def get_prompt(prompt_id: PromptIdPath, tenant: TenantDep, prompts: PromptsDep) -> PromptOut:
    """A prompt: its labels, its latest version number, and that version."""
    return prompts.to_public(prompts.get_prompt(tenant=tenant.id, prompt_id=prompt_id), with_latest=True)


@router.delete("/{prompt_id}", status_code=204, response_class=Response, responses=errors(404, 422))
def delete_prompt(prompt_id: PromptIdPath, tenant: TenantDep, prompts: PromptsDep) -> Response:
    """Delete a prompt and all its versions; jobs made from it keep their `prompt_id` and `prompt_version`."""
    prompts.delete_prompt(tenant=tenant.id, prompt_id=prompt_id)
    return Response(status_code=204)


@router.post("/{prompt_id}/versions", status_code=201, response_model=PromptVersionOut,
             responses=errors(400, 404, 409, 413, 422))
def create_version(prompt_id: PromptIdPath, body: VersionRequest, tenant: TenantDep, prompts: PromptsDep,
                   idempotent: IdempotentDep) -> JSONResponse:
    """A new version, numbered after the latest (earlier versions never change); `labels` move to it in the same
    write."""
    result = idempotent.run(f"create_prompt_version#{prompt_id}", body=body.model_dump(mode="json",
                                                                                       exclude_unset=True),
                            create=lambda _: prompts.add_version(tenant=tenant.id, prompt_id=prompt_id,
                                                                 request=body).to_public().model_dump(mode="json"))
    return created(result, status_code=201,
                   location=f"/v1/prompts/{prompt_id}/versions/{result.answer['version']}")


@router.get("/{prompt_id}/versions", response_model=PromptVersionList, responses=errors(404, 422))
def list_versions(prompt_id: PromptIdPath, tenant: TenantDep, prompts: PromptsDep, cursor: Cursor = None,
                  limit: Annotated[int, Query(ge=1, le=100)] = 20) -> PromptVersionList:
    """A prompt's versions, newest first, each with its count of `jobs` (how a weighted label split them)."""
    page = prompts.list_versions(tenant=tenant.id, prompt_id=prompt_id, limit=limit, cursor=cursor)
    return PromptVersionList(data=[v.to_public() for v in page.items], next_cursor=page.next_cursor)


@router.get("/{prompt_id}/versions/{version}", response_model=PromptVersionOut, responses=errors(404, 422))
def get_version(prompt_id: PromptIdPath, version: VersionPath, tenant: TenantDep,
                prompts: PromptsDep) -> PromptVersionOut:
    """One version of a prompt, as it was made, with its count of `jobs`."""
    return prompts.get_version(tenant=tenant.id, prompt_id=prompt_id, version=version).to_public()


@router.put("/{prompt_id}/labels/{label}", response_model=PromptOut, responses=errors(400, 404, 409, 413, 422))
def set_label(prompt_id: PromptIdPath, label: LabelPath, body: LabelTarget, tenant: TenantDep,
              prompts: PromptsDep) -> PromptOut:
    """Point a label at `version`, or split it by `weights` between versions (an A/B test), in one write: moving
    `production` back to an earlier version is the instant rollback. The next job naming the label uses it."""
    return prompts.to_public(prompts.set_label(tenant=tenant.id, prompt_id=prompt_id, label=label, target=body))


@router.delete("/{prompt_id}/labels/{label}", response_model=PromptOut, responses=errors(404, 422))
def remove_label(prompt_id: PromptIdPath, label: LabelPath, tenant: TenantDep, prompts: PromptsDep) -> PromptOut:
    """Remove a label; jobs naming it are refused (404) from then on."""
    return prompts.to_public(prompts.remove_label(tenant=tenant.id, prompt_id=prompt_id, label=label))
