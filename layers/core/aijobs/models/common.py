"""Models shared by every feature."""

from __future__ import annotations

from pydantic import BaseModel
from pydantic_core import PydanticCustomError


class ErrorDetail(BaseModel):
    """An error as clients see it: in an error response, a failed job, a batch item (the taxonomy of errors.py)."""

    type: str
    code: str
    message: str
    retryable: bool


def unicode_text(value: str) -> str:
    """``value`` if it can be stored and sent as UTF-8: JSON's ``\\ud800`` escapes can make lone surrogates,
    which DynamoDB, SQS and every JSON encoder refuse."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("string_unicode", "must be valid Unicode text (it holds a lone surrogate)") from None
    return value
