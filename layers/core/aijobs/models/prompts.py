"""The prompt registry: prompts, their immutable versions, labels that point at versions (or split traffic between
them by weight), and the ``prompt`` reference a job names (as OpenAI's ``prompt`` parameter: ``{id, version,
variables}``). The bounds below are the documented ones (README, "The prompt registry")."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from aijobs.models.common import Model, unicode_text

PROMPT_ID_PATTERN = r"^pmpt_[0-9A-Z]{26}$"
VARIABLE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# A placeholder is {{name}}, spaces allowed inside the braces; any other text in braces is literal text.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
DEFAULT_LABEL = "production"  # a prompt reference with neither version nor label: this label, else the latest

MAX_TEMPLATE_CHARS = 50_000  # instructions and every template message's content, in all, as written
MAX_TEMPLATE_MESSAGES = 64
MAX_VARIABLES = 32  # distinct {{names}} in one version, and variables in one reference
MAX_VARIABLE_CHARS = 50_000  # one variable's value; the rendered job still has the job request's limits
MAX_LABELS = 16  # per prompt
MAX_SPLIT_VERSIONS = 8  # versions in one weighted label
MAX_WEIGHT = 10_000
MAX_VERSION = 999_999  # version numbers are stored 6 digits wide

PromptId = Annotated[str, Field(pattern=PROMPT_ID_PATTERN, description="A registry prompt's id (pmpt_...)")]
LabelName = Annotated[str, Field(pattern=LABEL_PATTERN, description="A label, e.g. production or staging")]
VersionNumber = Annotated[int, Field(ge=1, le=MAX_VERSION)]
VariableName = Annotated[str, Field(pattern=VARIABLE_NAME_PATTERN, max_length=64)]
ModelName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[!-~]+$")]


def placeholders(text: str | None) -> list[str]:
    """The variable names of ``text``'s ``{{name}}`` placeholders, in order of first appearance."""
    return list(dict.fromkeys(PLACEHOLDER.findall(text or "")))


def render(text: str, variables: dict[str, str]) -> str:
    """``text`` with each ``{{name}}`` replaced by its value, in one pass: a value's own braces stay as they are."""
    return PLACEHOLDER.sub(lambda match: variables[match.group(1)], text)


class TemplateMessage(Model):
    """A message of a version's template; its content may hold ``{{variables}}``."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant"]
    content: Annotated[str, Field(min_length=1, max_length=MAX_TEMPLATE_CHARS)]


class VersionFields(Model):
    """What a version holds: instructions and/or template messages, and the defaults of the jobs made from it."""

    model_config = ConfigDict(extra="forbid")

    instructions: Annotated[str | None, Field(min_length=1, max_length=MAX_TEMPLATE_CHARS)] = None
    template: Annotated[list[TemplateMessage] | None, Field(min_length=1, max_length=MAX_TEMPLATE_MESSAGES)] = None
    model: ModelName | None = None
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    max_output_tokens: Annotated[int | None, Field(ge=1, le=128_000)] = None

    @model_validator(mode="after")
    def _holds_a_prompt(self) -> Any:
        if self.instructions is None and self.template is None:
            raise ValueError("give instructions, template, or both")
        texts = [self.instructions or "", *(m.content for m in self.template or [])]
        for text in texts:
            unicode_text(text)
        if sum(len(text) for text in texts) > MAX_TEMPLATE_CHARS:
            raise ValueError(f"instructions and template must be at most {MAX_TEMPLATE_CHARS} characters in all")
        if len(self.variables()) > MAX_VARIABLES:
            raise ValueError(f"at most {MAX_VARIABLES} distinct {{{{variables}}}}")
        return self

    def variables(self) -> list[str]:
        names = placeholders(self.instructions)
        for message in self.template or []:
            names += placeholders(message.content)
        return sorted(set(names))


class VersionRequest(VersionFields):
    """The body of ``POST /v1/prompts/{id}/versions``: a new version, and labels to point at it in the same write."""

    labels: Annotated[list[LabelName], Field(max_length=MAX_LABELS)] = Field(default_factory=list)


class PromptRequest(VersionRequest):
    """The body of ``POST /v1/prompts``: its name and its version 1 (and labels to point at it)."""

    name: Annotated[str, Field(min_length=1, max_length=128)]

    @field_validator("name")
    @classmethod
    def _name_is_text(cls, value: str) -> str:
        return unicode_text(value)


class LabelTarget(Model):
    """Where a label points: one ``version``, or ``weights`` that split jobs between versions (an A/B test)."""

    model_config = ConfigDict(extra="forbid")

    version: VersionNumber | None = None
    weights: dict[str, Annotated[int, Field(ge=1, le=MAX_WEIGHT)]] | None = Field(
        default=None, description='Version number (as a string) to a positive integer weight, e.g. {"3": 90, "4": 10}')

    @model_validator(mode="after")
    def _one_target(self) -> Any:
        if (self.version is None) == (self.weights is None):
            raise ValueError("give either version or weights")
        if self.weights is not None:
            if not 1 <= len(self.weights) <= MAX_SPLIT_VERSIONS:
                raise ValueError(f"weights must name 1 to {MAX_SPLIT_VERSIONS} versions")
            if any(not re.fullmatch(r"[1-9][0-9]{0,5}", key) for key in self.weights):  # 1 to MAX_VERSION
                raise ValueError("weights' keys must be version numbers, e.g. \"3\"")
        return self

    def versions(self) -> list[int]:
        return [self.version] if self.version is not None else sorted(int(k) for k in self.weights or {})


class PromptRef(Model):
    """A job's ``prompt``: which registry prompt, which version (a number, or a label's), and its variables.

    With neither ``version`` nor ``label``: the ``production`` label if the prompt has one, else its latest version.
    """

    model_config = ConfigDict(extra="forbid")

    id: PromptId
    version: VersionNumber | None = None
    label: LabelName | None = None
    variables: Annotated[dict[VariableName, Annotated[str, Field(max_length=MAX_VARIABLE_CHARS)]],
                         Field(max_length=MAX_VARIABLES)] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _version_or_label(self) -> Any:
        if self.version is not None and self.label is not None:
            raise ValueError("give version or label, not both")
        for value in self.variables.values():
            unicode_text(value)
        return self


class Prompt(Model):
    """A prompt as stored: its labels and its latest version number (the counter new versions take turns on)."""

    id: str
    tenant: str
    name: str
    latest_version: int
    labels: dict[str, LabelTarget] = Field(default_factory=dict)
    created_at: int
    updated_at: int


class PromptVersion(VersionFields):
    """A version as stored; never changed, but for its count of jobs."""

    model_config = ConfigDict(extra="ignore")

    prompt_id: str
    version: int
    created_at: int
    jobs: int = 0  # jobs submitted with this version (counted when each is stored)

    def to_public(self) -> PromptVersionOut:
        return PromptVersionOut(prompt_id=self.prompt_id, version=self.version, instructions=self.instructions,
                                template=self.template, model=self.model, temperature=self.temperature,
                                max_output_tokens=self.max_output_tokens, variables=self.variables(),
                                created_at=self.created_at, jobs=self.jobs)


class PromptVersionOut(Model):
    object: Literal["prompt.version"] = "prompt.version"
    prompt_id: str
    version: int
    instructions: str | None
    template: list[TemplateMessage] | None
    model: str | None
    temperature: float | None
    max_output_tokens: int | None
    variables: list[str] = Field(description="The {{variables}} a job must give, no more and no fewer")
    created_at: int
    jobs: int = Field(description="Jobs submitted with this version: how a weighted label's split came out")


class PromptOut(Model):
    id: str
    object: Literal["prompt"] = "prompt"
    name: str
    latest_version: int
    labels: dict[str, LabelTarget]
    created_at: int
    updated_at: int
    latest: PromptVersionOut | None = None  # the latest version (on reads of one prompt)


class PromptList(Model):
    object: Literal["list"] = "list"
    data: list[PromptOut]
    next_cursor: str | None


class PromptVersionList(Model):
    object: Literal["list"] = "list"
    data: list[PromptVersionOut]
    next_cursor: str | None
