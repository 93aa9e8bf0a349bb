"""The prompt registry's pure parts: placeholders, rendering, variable checks, weighted choice, applying a version."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from pydantic import ValidationError

from aijobs.errors import InvalidRequest, PayloadTooLarge
from aijobs.models.jobs import JobRequest, Message
from aijobs.models.prompts import LabelTarget, PromptRef, PromptVersion, VersionFields, placeholders, render
from aijobs.prompts import ResolvedPrompt, apply, check_variables, choose_version, render_version

PROMPT = "pmpt_01J0000000000000000000000Z"


def _version(**fields: object) -> PromptVersion:
    return PromptVersion.model_validate({"prompt_id": PROMPT, "version": 1, "created_at": 0, **fields})


def test_placeholders_are_names_in_double_braces_and_other_braces_are_text() -> None:
    text = "Hi {{ name }}, {{name}} again; {{1bad}} {single} {{ spaced out }} {{_ok2}}"
    assert placeholders(text) == ["name", "_ok2"]
    assert render(text, {"name": "Ann", "_ok2": "x"}) == "Hi Ann, Ann again; {{1bad}} {single} {{ spaced out }} x"


def test_rendering_is_one_pass_a_values_braces_stay() -> None:
    assert render("{{a}} and {{b}}", {"a": "{{b}}", "b": "B"}) == "{{b}} and B"


def test_check_variables_names_the_missing_and_the_unexpected() -> None:
    check_variables(["a", "b"], {"b": "", "a": "x"})
    with pytest.raises(InvalidRequest) as caught:
        check_variables(["a", "b", "c"], {"a": "x", "z": "y", "y": "y"})
    assert caught.value.code == "prompt_variables"
    assert caught.value.message == "prompt.variables: missing: b, c; not in the prompt: y, z"


def test_a_weighted_choice_follows_the_weights_and_a_seed_repeats_it() -> None:
    target = LabelTarget(weights={"3": 90, "4": 10})

    def picks(seed: int) -> list[int]:
        rng = random.Random(seed)
        return [choose_version(target, rng) for _ in range(1000)]

    assert picks(7) == picks(7) and set(picks(7)) == {3, 4}
    assert 850 <= Counter(picks(7))[3] <= 950
    assert choose_version(LabelTarget(version=2), random.Random()) == 2


@pytest.mark.parametrize("body", [{}, {"version": 1, "weights": {"1": 1}}, {"weights": {}},
                                  {"weights": {"0": 1}}, {"weights": {"01": 1}}, {"weights": {"1": 0}},
                                  {"weights": {"\u00b2": 1}}, {"weights": {str(n): 1 for n in range(1, 10)}},
                                  {"weights": {"1000000": 1}}])
def test_a_label_target_is_one_version_or_1_to_8_positive_weights(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        LabelTarget.model_validate(body)


def test_a_reference_names_a_version_or_a_label_not_both_and_a_string_version_is_a_number() -> None:
    with pytest.raises(ValidationError):
        PromptRef.model_validate({"id": PROMPT, "version": 1, "label": "production"})
    assert PromptRef.model_validate({"id": PROMPT, "version": "2"}).version == 2  # OpenAI sends versions as strings
    with pytest.raises(ValidationError):
        PromptRef.model_validate({"id": "prompt_1"})


def test_a_version_needs_instructions_or_a_template_within_bounds() -> None:
    with pytest.raises(ValidationError):
        VersionFields.model_validate({})
    with pytest.raises(ValidationError):
        VersionFields.model_validate({"instructions": "x" * 30_000,
                                      "template": [{"role": "user", "content": "y" * 30_000}]})
    with pytest.raises(ValidationError):
        VersionFields.model_validate({"instructions": " ".join(f"{{{{v{i}}}}}" for i in range(33))})
    fields = VersionFields.model_validate({"instructions": "{{b}} {{a}}",
                                           "template": [{"role": "user", "content": "{{a}} {{c}}"}]})
    assert fields.variables() == ["a", "b", "c"]


def test_apply_puts_the_template_first_and_the_request_overrides_the_versions_defaults() -> None:
    resolved = render_version(_version(instructions="For {{who}}", template=[{"role": "user", "content": "Q: {{q}}"}],
                                       model="m1", temperature=0.5, max_output_tokens=10), {"who": "Ann", "q": "why"})

    request = apply(resolved, JobRequest(prompt=PromptRef(id=PROMPT), input="more", model="m2"))

    assert request.instructions == "For Ann" and request.model == "m2" and request.temperature == 0.5
    assert request.input == [Message(role="user", content="Q: why"), Message(role="user", content="more")]
    assert request.prompt is None and request.max_output_tokens == 10


def test_apply_without_template_keeps_the_requests_input_and_needs_one() -> None:
    resolved = ResolvedPrompt(prompt_id=PROMPT, version=1, instructions="sys", messages=[], model=None,
                              temperature=None, max_output_tokens=None)
    assert apply(resolved, JobRequest(prompt=PromptRef(id=PROMPT), input="text")).input == "text"
    with pytest.raises(InvalidRequest) as caught:
        apply(resolved, JobRequest(prompt=PromptRef(id=PROMPT)))
    assert caught.value.code == "prompt_input_missing"


def test_a_rendered_job_over_the_job_limits_is_413() -> None:
    resolved = render_version(_version(template=[{"role": "user", "content": "{{a}}{{b}}{{c}}"}]),
                              {"a": "x" * 40_000, "b": "y" * 40_000, "c": "z" * 40_000})
    with pytest.raises(PayloadTooLarge):
        apply(resolved, JobRequest(prompt=PromptRef(id=PROMPT)))


def test_a_job_request_needs_input_or_a_prompt() -> None:
    with pytest.raises(ValidationError, match="input is required"):
        JobRequest.model_validate({"model": "m"})
    assert JobRequest.model_validate({"prompt": {"id": PROMPT}}).input is None
