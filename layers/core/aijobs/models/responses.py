"""OpenAI's Responses API as aijobs speaks it (``/v1/responses``): the request a client sends, and the errors it gets.

A response is a job seen through another face: ``resp_<ULID>`` and ``job_<ULID>`` name the same record. Only what
aijobs does is accepted; any other field is a 400 naming it, never silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from aijobs.models.common import Model

RESPONSE_PREFIX = "resp_"
JOB_PREFIX = "job_"


class InputText(Model):
    model_config = ConfigDict(extra="forbid")

    type: Literal["input_text", "output_text"]  # output_text: an assistant turn of a conversation sent back
    text: str


class InputMessage(Model):
    model_config = ConfigDict(extra="forbid")

    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: str | Annotated[list[InputText], Field(min_length=1)]

    @property
    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(part.text for part in self.content)


class PromptParam(Model):
    """OpenAI's ``prompt`` parameter: a registry prompt (``/v1/prompts``), its version (or a label), its variables."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(min_length=1, max_length=64)]
    version: Annotated[str | None, Field(max_length=64)] = None
    variables: dict[str, str] | None = None

    def registry_ref(self) -> dict[str, Any]:
        """The job's ``prompt``: a version given as digits is that version; any other ``version`` names a label
        (``production``, ``staging``): OpenAI's ids of versions are strings."""
        ref: dict[str, Any] = {"id": self.id, "variables": self.variables or {}}
        if self.version is not None:
            ref["version" if self.version.isdigit() else "label"] = (int(self.version) if self.version.isdigit()
                                                                   else self.version)
        return ref


class JsonSchemaTextFormat(Model):
    """``text.format`` of type ``json_schema``: OpenAI's Responses API spells the job's ``response_format`` flat."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    type: Literal["json_schema"]
    name: str
    schema_: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None


class PlainTextFormat(Model):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "json_object"]


class TextParam(Model):
    """OpenAI's ``text`` parameter: the output's format."""

    model_config = ConfigDict(extra="forbid")

    format: Annotated[JsonSchemaTextFormat | PlainTextFormat, Field(discriminator="type")]

    def response_format(self) -> dict[str, Any] | None:
        """The job's ``response_format`` (validated by ``JobRequest``); None: plain text."""
        if isinstance(self.format, JsonSchemaTextFormat):
            spec = self.format.model_dump(exclude_none=True, exclude={"type"})
            return {"type": "json_schema", "json_schema": spec}
        return {"type": "json_object"} if self.format.type == "json_object" else None


class ResponseCreate(Model):
    """The body of ``POST /v1/responses``."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    input: str | Annotated[list[InputMessage], Field(min_length=1)] | None = None
    instructions: str | None = None
    background: bool = False
    stream: bool = False
    max_output_tokens: int | None = None
    temperature: float | None = None
    metadata: dict[str, str] | None = None
    prompt: PromptParam | None = None
    text: TextParam | None = None

    def job_fields(self) -> dict[str, Any]:
        """The job request this response asks for (validated by ``JobRequest``, whose limits apply)."""
        fields: dict[str, Any] = {"stream": self.stream}
        if isinstance(self.input, list):
            fields["input"] = [{"role": m.role, "content": m.text} for m in self.input]
        elif self.input is not None:
            fields["input"] = self.input
        for name in ("model", "instructions", "max_output_tokens", "temperature", "metadata"):
            if (value := getattr(self, name)) is not None:
                fields[name] = value
        if self.prompt is not None:
            fields["prompt"] = self.prompt.registry_ref()
        if self.text is not None and (response_format := self.text.response_format()) is not None:
            fields["response_format"] = response_format
        return fields


class OpenAIErrorDetail(Model):
    message: str
    type: str = Field(description="invalid_request_error, rate_limit_error, insufficient_quota or server_error")
    param: str | None = Field(None, description="The field at fault, for a bad request")
    code: str | None = Field(None, description="aijobs' error code (e.g. invalid_fields, job_not_found)")


class OpenAIErrorResponse(Model):
    """Errors on ``/v1/responses`` in OpenAI's shape, so that its SDKs raise their typed exceptions."""

    error: OpenAIErrorDetail
    request_id: str | None = None


def job_id_of(response_id: str) -> str | None:
    """The job a ``resp_`` (or ``job_``) id names; None for any other id."""
    for prefix in (RESPONSE_PREFIX, JOB_PREFIX):
        if response_id.startswith(prefix) and len(response_id) > len(prefix):
            return JOB_PREFIX + response_id[len(prefix):]
    return None


def response_id_of(job_id: str) -> str:
    return RESPONSE_PREFIX + job_id.removeprefix(JOB_PREFIX)
