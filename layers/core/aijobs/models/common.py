"""Models shared by every feature."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError


class Model(BaseModel):
    """The base of every model of aijobs: its validators and serializers are built when it is first used, not at
    import, so a function builds only the models it uses (the scheduler's fire does not build the API's answers).
    Under SnapStart every imported model is built before the snapshot (aijobs/snapstart.py)."""

    model_config = ConfigDict(defer_build=True)


def build_models() -> None:
    """Build every model imported so far (before a SnapStart snapshot: no restored copy builds one)."""
    pending = [Model]
    while pending:
        model = pending.pop()
        model.model_rebuild()  # a no-op for a model already built
        pending.extend(model.__subclasses__())


class ErrorDetail(Model):
    """An error as clients see it: in an error response, a failed job, a batch item (the taxonomy of errors.py)."""

    type: str = Field(description="The kind of error, e.g. invalid_request, not_found, conflict, internal")
    code: str = Field(description="What exactly went wrong, e.g. invalid_fields, job_not_found")
    message: str = Field(description="For people: what is wrong, naming any fields at fault; never repeats input")
    retryable: bool = Field(description="Whether the same request may succeed later (after Retry-After, if given)")


class ErrorBody(ErrorDetail):
    request_id: str | None = Field(description="The request's id, also in the X-Request-Id header")


class ErrorResponse(Model):
    """The body of every error response, whatever the status."""

    error: ErrorBody


def unicode_text(value: str) -> str:
    """``value`` if it can be stored and sent as UTF-8: JSON's ``\\ud800`` escapes can make lone surrogates,
    which DynamoDB, SQS and every JSON encoder refuse."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("string_unicode", "must be valid Unicode text (it holds a lone surrogate)") from None
    return value
