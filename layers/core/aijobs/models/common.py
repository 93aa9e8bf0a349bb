"""Models shared by every feature."""

from __future__ import annotations

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    """An error as clients see it: in an error response, a failed job, a batch item (the taxonomy of errors.py)."""

    type: str
    code: str
    message: str
    retryable: bool
