"""``GET /v1/models``: the models a tenant may use, in OpenAI's shape, so that its SDKs' ``models.list()`` and
``models.retrieve()`` read them."""

from __future__ import annotations

from typing import Literal

from aijobs.models.common import Model


class ModelInfo(Model):
    """One model. ``created`` is 0: a backend's models have no date aijobs knows; ``owned_by`` is the backend that
    serves it (the name jobs record as ``backend``)."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str


class ModelList(Model):
    object: Literal["list"] = "list"
    data: list[ModelInfo]
