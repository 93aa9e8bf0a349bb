"""/v1/embeddings: OpenAI's embeddings API over an embedding job, so that the SDK's ``client.embeddings.create``
works against aijobs.

The request is waited for (up to ``AIJOBS_SYNC_WAIT_S``) as an embedding job like any other (limits, usage, cost,
lanes and backends apply); the answer is the job's vectors file, as OpenAI's embeddings endpoint answers. A job that
would answer more than a front can carry is refused before it runs: such work belongs on ``POST /v1/jobs`` with
``kind: "embedding"``, whose vectors are a file at a URL.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field

from aijobs.api.deps import IdempotentDep, JobsDep, ServicesDep, TenantDep, WaitsDep, cost_header
from aijobs.api.routes.responses import ResponseTimeout, job_request_of
from aijobs.errors import InvalidRequest, ProviderError
from aijobs.models.common import Model
from aijobs.models.jobs import Job, JobRequest, JobStatus, as_base64
from aijobs.models.responses import OpenAIErrorResponse

router = APIRouter(prefix="/v1/embeddings", tags=["openai"],
                   responses={status: {"model": OpenAIErrorResponse}
                              for status in (400, 401, 403, 413, 429, 500, 502, 503, 504)})
# What one answer may carry: API Gateway's payload limit is 10 MB and Lambda's 6 MB, with room for the JSON around.
MAX_ANSWER_BYTES = 5_000_000
# Bytes a vector's number takes in the answer: base64 of float32 (4 bytes, 4/3 of them as text), or a JSON float
# ("-0.012345678," at most about 20 characters).
BYTES_PER_NUMBER = {"base64": 5.4, "float": 20}
# A model's vector length when the request does not say (text-embedding-3-small's and ada-002's).
USUAL_DIMENSIONS = 1536


class EmbeddingsCreate(Model):
    """OpenAI's embeddings request; what aijobs does not do (token arrays as input) is a 400, never ignored."""

    model_config = ConfigDict(extra="forbid")

    model: str
    input: str | list[str]
    dimensions: int | None = None
    encoding_format: Literal["float", "base64"] = "float"
    user: Annotated[str | None, Field(max_length=256)] = None  # accepted as OpenAI's is; not stored


def _job_request(body: EmbeddingsCreate) -> JobRequest:
    fields = {"kind": "embedding", "model": body.model, "input": body.input, "dimensions": body.dimensions}
    request = job_request_of({k: v for k, v in fields.items() if v is not None})
    size = len(request.texts) * (body.dimensions or USUAL_DIMENSIONS) * BYTES_PER_NUMBER[body.encoding_format]
    if size > MAX_ANSWER_BYTES:
        raise InvalidRequest(f"{len(request.texts)} vectors would make an answer of about {size / 1e6:.0f} MB, over "
                             f"the {MAX_ANSWER_BYTES / 1e6:.0f} MB one answer carries: use encoding_format base64, "
                             "fewer texts, or POST /v1/jobs with kind embedding (its vectors are a file at a URL)",
                             code="answer_too_large")
    return request


def _answer(job: Job, text: str, encoding_format: str) -> dict[str, Any]:
    data = [json.loads(line) for line in text.splitlines() if line]
    if encoding_format == "base64":
        data = [{**item, "embedding": as_base64(item["embedding"])} for item in data]
    tokens = job.usage.input_tokens if job.usage else 0
    return {"object": "list", "data": data, "model": job.provider_model or job.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


@router.post("", responses={200: {"description": "OpenAI's embeddings answer: {object: list, data, model, usage}",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}})
async def create_embeddings(body: EmbeddingsCreate, tenant: TenantDep, jobs: JobsDep, waits: WaitsDep,
                            svc: ServicesDep, idempotent: IdempotentDep) -> JSONResponse:
    """Embed the input texts: an embedding job waited for (up to `AIJOBS_SYNC_WAIT_S`, then a 504 with
    `x-should-retry: false`: the job runs on, read it with `GET /v1/jobs/{id}`)."""
    request = _job_request(body)
    result = await run_in_threadpool(
        idempotent.run, "create_embeddings", body=body.model_dump(mode="json", exclude_unset=True),
        create=lambda key: {"id": jobs.submit_job(tenant=tenant.id, request=request, key=key).id})
    job = await waits.wait(tenant=tenant.id, job_id=result.answer["id"], timeout_s=svc.settings.sync_wait_s)
    if not job.status.is_terminal:
        raise ResponseTimeout(f"the embeddings did not finish within {svc.settings.sync_wait_s} s and are made on "
                              f"as the job {job.id}: read it with GET /v1/jobs/{job.id}", code="response_timeout")
    if job.status is not JobStatus.completed or not job.output_files:
        error = job.error
        raise ProviderError(error.message if error else f"the embeddings job was {job.status.value}",
                            code=error.code if error else f"job_{job.status.value}")
    text = await run_in_threadpool(svc.store.output_file_text, job.output_files[0])
    answer = _answer(job, text, body.encoding_format)
    return JSONResponse(answer, headers=cost_header(job))
