"""The prompt registry: create prompts and versions, move labels, and resolve a job's ``prompt`` reference.

``PromptService.resolve`` is what ``JobService`` (and ``/v1/responses``) call: the reference's version (a number, a
label's, or by default the ``production`` label's, else the latest), its variables checked (every ``{{name}}``
given, no other), and the version rendered. ``apply`` then makes the job request the worker runs: the version's
instructions and template messages, the request's own ``input`` appended as the last message(s), the version's
model and parameters as defaults the request overrides.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field

from pydantic import ValidationError

from aijobs.clock import Clock, system_clock
from aijobs.dynamo import Page
from aijobs.errors import Conflict, InvalidRequest, NotFound, from_validation_errors
from aijobs.ids import new_prompt_id
from aijobs.models.jobs import JobRequest, Message
from aijobs.models.prompts import (
    DEFAULT_LABEL,
    MAX_LABELS,
    LabelTarget,
    Prompt,
    PromptOut,
    PromptRef,
    PromptRequest,
    PromptVersion,
    VersionRequest,
    render,
)
from aijobs.observability import logger
from aijobs.prompt_store import PromptStore, VersionRace

# Concurrent changes of one prompt each take the next number, after a short random pause when they lost the race;
# past this many lost races: 409 prompt_changed (retryable).
VERSION_TRIES = 10
VERSION_RETRY_PAUSE_S = 0.02


@dataclass(frozen=True)
class ResolvedPrompt:
    """A reference resolved: which version, and its text with the variables put in."""

    prompt_id: str
    version: int
    instructions: str | None
    messages: list[Message]
    model: str | None
    temperature: float | None
    max_output_tokens: int | None


def choose_version(target: LabelTarget, rng: random.Random) -> int:
    """The version a label gives one job: its version, or one of its weights' versions at random by weight."""
    if target.version is not None:
        return target.version
    weights = sorted((int(version), weight) for version, weight in (target.weights or {}).items())
    return rng.choices([v for v, _ in weights], weights=[w for _, w in weights])[0]


def check_variables(needed: list[str], given: dict[str, str]) -> None:
    """``InvalidRequest`` (``prompt_variables``) naming the missing and the unexpected variables, if any."""
    missing = sorted(set(needed) - set(given))
    extra = sorted(set(given) - set(needed))
    if missing or extra:
        parts = ([f"missing: {', '.join(missing)}"] if missing else []) + (
            [f"not in the prompt: {', '.join(extra)}"] if extra else [])
        raise InvalidRequest(f"prompt.variables: {'; '.join(parts)}", code="prompt_variables")


def render_version(version: PromptVersion, variables: dict[str, str]) -> ResolvedPrompt:
    """The version with ``variables`` put in; they must be exactly the version's (``check_variables``)."""
    check_variables(version.variables(), variables)
    return ResolvedPrompt(
        prompt_id=version.prompt_id, version=version.version,
        instructions=render(version.instructions, variables) if version.instructions is not None else None,
        messages=[Message.model_construct(role=m.role, content=render(m.content, variables))
                  for m in version.template or []],
        model=version.model, temperature=version.temperature, max_output_tokens=version.max_output_tokens)


def apply(resolved: ResolvedPrompt, request: JobRequest) -> JobRequest:
    """The job request made from a resolved prompt: what the worker sends and the limits count.

    The request's ``instructions``, ``model``, ``temperature`` and ``max_output_tokens`` override the version's;
    its ``input`` comes after the template's messages (a text as a user message). The result is validated as any
    job request (its sizes included) and names no prompt: the job records ``prompt_id`` and ``prompt_version``.
    """
    own = request.input_messages
    template = [{"role": m.role, "content": m.content} for m in resolved.messages]
    if not template and not own:
        raise InvalidRequest(f"input is required: version {resolved.version} of the prompt has no template "
                             "messages", code="prompt_input_missing")
    data = request.model_dump(exclude={"prompt", "input"}, exclude_none=True)
    data["input"] = request.input if not template else template + own
    for name in ("instructions", "model", "temperature", "max_output_tokens"):
        if data.get(name) is None and (value := getattr(resolved, name)) is not None:
            data[name] = value
    try:
        return JobRequest.model_validate(data)
    except ValidationError as exc:
        raise from_validation_errors(exc.errors()) from None


@dataclass
class PromptService:
    store: PromptStore
    clock: Clock = system_clock
    # Which version a weighted label gives each job; tests seed it (rng.seed(n)) to make a split repeatable.
    rng: random.Random = field(default_factory=random.Random)

    # --- the API ----------------------------------------------------------------------------------

    def create_prompt(self, *, tenant: str, request: PromptRequest) -> Prompt:
        now = int(self.clock())
        prompt_id = new_prompt_id()
        prompt = Prompt(id=prompt_id, tenant=tenant, name=request.name, latest_version=1, created_at=now,
                        updated_at=now, labels={label: LabelTarget(version=1) for label in request.labels})
        self.store.create_prompt(prompt, self._version(prompt_id, 1, request, now))
        logger.info("prompt created", extra={"prompt_id": prompt_id, "tenant": tenant})
        return prompt

    def add_version(self, *, tenant: str, prompt_id: str, request: VersionRequest) -> PromptVersion:
        """A new version, numbered after the latest: a conditional write on the prompt's counter, tried again on
        the next number when a concurrent change took this one."""
        for attempt in range(VERSION_TRIES):
            if attempt:
                time.sleep(self.rng.uniform(0, VERSION_RETRY_PAUSE_S * attempt))
            prompt = self.get_prompt(tenant=tenant, prompt_id=prompt_id)
            self._check_label_room(prompt, request.labels)
            now = int(self.clock())
            version = self._version(prompt_id, prompt.latest_version + 1, request, now)
            try:
                self.store.add_version(prompt, version, labels=request.labels, updated_at=now)
            except VersionRace:
                continue
            logger.info("prompt version created", extra={"prompt_id": prompt_id, "version": version.version})
            return version
        raise Conflict("the prompt is changing too often; try again", code="prompt_changed", retryable=True)

    def get_prompt(self, *, tenant: str, prompt_id: str) -> Prompt:
        prompt = self.store.get_prompt(tenant, prompt_id) if prompt_id.startswith("pmpt_") else None
        if prompt is None:  # another tenant's prompt is on its own partition: it does not exist for this one
            raise NotFound("no such prompt", code="prompt_not_found")
        return prompt

    def get_version(self, *, tenant: str, prompt_id: str, version: int) -> PromptVersion:
        found = self.store.get_version(tenant, prompt_id, version) if prompt_id.startswith("pmpt_") else None
        if found is None:
            self.get_prompt(tenant=tenant, prompt_id=prompt_id)  # 404 for the prompt first
            raise NotFound(f"the prompt has no version {version}", code="prompt_version_not_found")
        return found

    def list_prompts(self, *, tenant: str, limit: int, cursor: str | None) -> Page[Prompt]:
        return self.store.list_prompts(tenant=tenant, limit=limit, cursor=cursor)

    def list_versions(self, *, tenant: str, prompt_id: str, limit: int,
                      cursor: str | None) -> Page[PromptVersion]:
        self.get_prompt(tenant=tenant, prompt_id=prompt_id)
        return self.store.list_versions(tenant=tenant, prompt_id=prompt_id, limit=limit, cursor=cursor)

    def set_label(self, *, tenant: str, prompt_id: str, label: str, target: LabelTarget) -> Prompt:
        """Point a label at a version, or split it between versions, in one write: the instant rollback."""
        if not self.store.set_label(tenant, prompt_id, label, target, max_labels=MAX_LABELS,
                                    updated_at=int(self.clock())):
            prompt = self.get_prompt(tenant=tenant, prompt_id=prompt_id)
            if max(target.versions()) > prompt.latest_version:
                raise InvalidRequest(f"the prompt has no version {max(target.versions())} (its latest is "
                                     f"{prompt.latest_version})", code="prompt_version_not_found")
            self._check_label_room(prompt, [label])
            raise Conflict("the prompt changed meanwhile; try again", code="prompt_changed", retryable=True)
        logger.info("prompt label set", extra={"prompt_id": prompt_id, "label": label,
                                               "versions": target.versions()})
        return self.get_prompt(tenant=tenant, prompt_id=prompt_id)

    def remove_label(self, *, tenant: str, prompt_id: str, label: str) -> Prompt:
        if not self.store.remove_label(tenant, prompt_id, label, updated_at=int(self.clock())):
            self.get_prompt(tenant=tenant, prompt_id=prompt_id)
            raise NotFound("the prompt has no such label", code="prompt_label_not_found")
        return self.get_prompt(tenant=tenant, prompt_id=prompt_id)

    def delete_prompt(self, *, tenant: str, prompt_id: str) -> None:
        """Delete a prompt and its versions; jobs made from it keep their prompt_id and prompt_version."""
        self.get_prompt(tenant=tenant, prompt_id=prompt_id)
        self.store.delete_prompt(tenant, prompt_id)
        logger.info("prompt deleted", extra={"prompt_id": prompt_id, "tenant": tenant})

    def to_public(self, prompt: Prompt, *, with_latest: bool = False) -> PromptOut:
        latest = None
        if with_latest and (version := self.store.get_version(prompt.tenant, prompt.id, prompt.latest_version)):
            latest = version.to_public()
        return PromptOut(id=prompt.id, name=prompt.name, latest_version=prompt.latest_version, labels=prompt.labels,
                         created_at=prompt.created_at, updated_at=prompt.updated_at, latest=latest)

    # --- resolution -------------------------------------------------------------------------------

    def resolve(self, ref: PromptRef, tenant: str) -> ResolvedPrompt:
        """The version ``ref`` names, rendered with its variables: 404 (``prompt_not_found``,
        ``prompt_version_not_found``, ``prompt_label_not_found``) or 422 ``prompt_variables``."""
        if ref.version is not None:
            number = ref.version
            self.get_prompt(tenant=tenant, prompt_id=ref.id)  # a deleted prompt resolves no more, by any version
        else:
            prompt = self.get_prompt(tenant=tenant, prompt_id=ref.id)
            target = prompt.labels.get(ref.label or DEFAULT_LABEL)
            if target is None and ref.label is not None:
                raise NotFound(f"the prompt has no label {ref.label}", code="prompt_label_not_found")
            number = choose_version(target, self.rng) if target is not None else prompt.latest_version
        return render_version(self.get_version(tenant=tenant, prompt_id=ref.id, version=number), ref.variables)

    def count_jobs(self, tenant: str, versions: list[tuple[str, int]]) -> None:
        """Count new jobs on their versions (what ``jobs`` shows per version)."""
        if versions:
            self.store.count_jobs(tenant, dict(Counter(versions)))

    # --- checks -----------------------------------------------------------------------------------

    @staticmethod
    def _version(prompt_id: str, number: int, request: VersionRequest, now: int) -> PromptVersion:
        fields = request.model_dump(include={"instructions", "template", "model", "temperature",
                                             "max_output_tokens"})
        return PromptVersion.model_validate({**fields, "prompt_id": prompt_id, "version": number,
                                             "created_at": now})

    @staticmethod
    def _check_label_room(prompt: Prompt, labels: list[str]) -> None:
        if len(set(prompt.labels) | set(labels)) > MAX_LABELS:
            raise InvalidRequest(f"a prompt has at most {MAX_LABELS} labels", code="too_many_labels")
