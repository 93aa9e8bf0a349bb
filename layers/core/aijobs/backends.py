"""Several model backends: which backend serves a model, and which models to fall back to when it cannot.

The configuration (``AIJOBS_MODEL_BACKENDS``, JSON; README "Model backends") names backends (a base URL and the
Secrets Manager secret of its key) and routes models to them: an exact name wins over patterns (fnmatch globs such
as ``gpt-*``), patterns are tried in the order given, and ``default_backend`` (if any) serves the rest. A route may
list fallback models, tried in order when its backend fails retryably (429, 5xx, timeouts, unreachable) before any
output reached the caller; each fallback model goes to its own route's backend.

``ModelRouter`` (aijobs/model_router.py: kept apart, so that the settings, which check this configuration at every
cold start, load no provider code) is the ``ModelProvider`` the worker calls: every call goes through
``_with_fallback``, so a new provider method is routed by one line (see its docstring). Without the setting, the
single backend of ``AIJOBS_MODEL_BASE_URL`` serves every model, with no fallback (``single_backend``).

Examples
--------
>>> config = ModelBackends.model_validate({
...     "backends": {"openai": {}, "vllm": {"base_url": "http://10.0.0.5:8000/v1"}},
...     "models": [{"model": "llama-*", "backend": "vllm", "fallback": ["gpt-4o-mini"]},
...                {"model": "gpt-*", "backend": "openai"}]})
>>> config.candidates("llama-3.1-8b")
[('vllm', 'llama-3.1-8b'), ('openai', 'gpt-4o-mini')]
"""

from __future__ import annotations

import fnmatch
import json
from typing import Annotated, Self

from pydantic import ConfigDict, Field, SecretStr, StringConstraints, ValidationError, model_validator
from pydantic_core import ErrorDetails

from aijobs.models.common import Model

# The backend of the single-backend settings (AIJOBS_MODEL_BASE_URL and its key), as jobs record it.
SINGLE_BACKEND = "default"
_SECRET_ARN = r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$"
_GLOB_CHARS = frozenset("*?[")
Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]


def is_pattern(model: str) -> bool:
    return not _GLOB_CHARS.isdisjoint(model)


class Backend(Model):
    """One OpenAI-compatible server. ``api_key`` (a literal) is for the local stack only; deployed stacks name a
    secret, read once per worker process. Neither: the server is called without a key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str | None = None  # None: OpenAI's
    api_key_secret_arn: Annotated[str | None, Field(pattern=_SECRET_ARN)] = None
    api_key: SecretStr | None = None

    @model_validator(mode="after")
    def _one_key(self) -> Self:
        if self.api_key is not None and self.api_key_secret_arn is not None:
            raise ValueError("give api_key_secret_arn or api_key, not both")
        return self


class ModelRoute(Model):
    """Models named ``model`` (an exact name, or a glob) go to ``backend``; ``fallback`` models are tried in order
    when it fails retryably."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Name
    backend: Name
    fallback: Annotated[list[Name], Field(max_length=10, default_factory=list)]


class ModelBackends(Model):
    """The whole routing configuration, checked once at cold start: every backend a route names exists, and every
    fallback model has a backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backends: Annotated[dict[Name, Backend], Field(min_length=1)]
    models: list[ModelRoute] = Field(default_factory=list)
    default_backend: Name | None = None  # the backend of models no route matches; None: such a job fails

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        named = [route.backend for route in self.models] + ([self.default_backend] if self.default_backend else [])
        unknown = sorted({name for name in named if name not in self.backends})
        if unknown:
            raise ValueError(f"routes name backends that are not in backends: {', '.join(unknown)}")
        exact = [route.model for route in self.models if not is_pattern(route.model)]
        if len(exact) != len(set(exact)):
            raise ValueError("a model name has more than one route")
        for route in self.models:
            unrouted = [model for model in route.fallback if self.route(model) is None]
            if unrouted:
                raise ValueError(f"fallback models of {route.model} match no route and there is no "
                                 f"default_backend: {', '.join(unrouted)}")
        return self

    def route(self, model: str) -> ModelRoute | None:
        """The route of ``model``: its exact name's, else the first pattern it matches, else the default backend."""
        for route in self.models:
            if route.model == model and not is_pattern(route.model):
                return route
        for route in self.models:
            if is_pattern(route.model) and fnmatch.fnmatchcase(model, route.model):
                return route
        if self.default_backend is None:
            return None
        # Built, not validated: the model is any name a job or a request gives, of any length.
        return ModelRoute.model_construct(model=model, backend=self.default_backend, fallback=[])

    def candidates(self, model: str) -> list[tuple[str, str]]:
        """``(backend, model)`` to try in order: the model's own backend, then each fallback model's (only the asked
        model's fallback list is followed, not a fallback's own)."""
        route = self.route(model)
        if route is None:
            return []
        tried = [(route.backend, model)]
        for fallback in route.fallback:
            fallback_route = self.route(fallback)
            if fallback_route is not None and (fallback_route.backend, fallback) not in tried:
                tried.append((fallback_route.backend, fallback))
        return tried

    def exact_models(self) -> list[str]:
        """The model names routes give in full (patterns cannot be listed), in the order given."""
        return list(dict.fromkeys(route.model for route in self.models if not is_pattern(route.model)))

    def literal_keys(self) -> list[str]:
        """The backends whose key is written in the configuration (allowed in the local stack only)."""
        return [name for name, backend in self.backends.items() if backend.api_key is not None]


def parse_model_backends(value: object) -> ModelBackends | None:
    """``AIJOBS_MODEL_BACKENDS`` as read from the environment: empty is None (one backend); else JSON that must be a
    valid configuration. The error names what is wrong, never the value (it may hold a key)."""
    if value is None or isinstance(value, ModelBackends):
        return value
    if isinstance(value, str) and not value.strip():
        return None
    try:
        data = json.loads(value) if isinstance(value, str | bytes) else value
    except json.JSONDecodeError as exc:
        raise ValueError(f"AIJOBS_MODEL_BACKENDS is not JSON (line {exc.lineno}, column {exc.colno})") from None
    try:
        return ModelBackends.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors(include_input=False, include_url=False))
        raise ValueError(f"AIJOBS_MODEL_BACKENDS is not a valid configuration: {problems}") from None


def _problem(error: ErrorDetails) -> str:
    where = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def single_backend(base_url: str | None) -> ModelBackends:
    """The simple case, without AIJOBS_MODEL_BACKENDS: one backend serves every model, with no fallback."""
    return ModelBackends(backends={SINGLE_BACKEND: Backend(base_url=base_url)}, default_backend=SINGLE_BACKEND)


def listed_models(backends: ModelBackends, *, default_model: str, allowed: list[str] | None) -> list[str]:
    """The models ``GET /v1/models`` shows a tenant: the default model and every exact name routed, or, for a tenant
    limited to ``allowed`` models, those of them that some backend serves."""
    if allowed is not None:
        return [model for model in dict.fromkeys(allowed) if backends.route(model) is not None]
    return list(dict.fromkeys([default_model, *backends.exact_models()]))


def listed_backend(backends: ModelBackends, model: str, *, default_model: str,
                   allowed: list[str] | None) -> str | None:
    """The backend of a model ``GET /v1/models/{id}`` shows the tenant (None: not found): a listed model, or one a
    route's pattern matches (never merely the default backend's catch-all, which would find every name)."""
    if allowed is not None and model not in allowed:
        return None
    route = backends.route(model)
    if route is None:
        return None
    listed = model in listed_models(backends, default_model=default_model, allowed=allowed)
    return route.backend if listed or any(r.model == route.model for r in backends.models) else None
