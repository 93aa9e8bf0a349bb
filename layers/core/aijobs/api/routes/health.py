from __future__ import annotations

from fastapi import APIRouter

from aijobs.models.common import Model

router = APIRouter(tags=["health"])


class Health(Model):
    status: str


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """Liveness; needs no API key."""
    return Health(status="ok")
