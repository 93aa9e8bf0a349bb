"""Structured outputs: whether a text job's output is the JSON its ``response_format`` asks for.

The worker checks every answer (a provider's ``strict`` mode is a promise some servers do not keep, and
``json_object`` promises only JSON): an output that is not JSON, or that does not match the schema, fails the attempt
with ``output_invalid``. The error names where the output first fails the schema (a path into it and the schema's
rule there) and never repeats the output.
"""

from __future__ import annotations

import json
from typing import Any

from aijobs.errors import OutputInvalid
from aijobs.models.jobs import JsonObjectResponseFormat, JsonSchemaResponseFormat

# A path step longer than this (an output's own key) is not named.
MAX_STEP_CHARS = 64


def _path(steps: Any) -> str:
    """``$.items[2].price``: where in the output a rule failed."""
    path = "$"
    for step in steps:
        if isinstance(step, int):
            path += f"[{step}]"
        else:
            text = str(step)
            path += f".{text}" if len(text) <= MAX_STEP_CHARS and text.isprintable() else ".<key>"
    return path


def check_output(response_format: JsonSchemaResponseFormat | JsonObjectResponseFormat, text: str,
                 *, finish_reason: str | None = None) -> OutputInvalid | None:
    """None when ``text`` is what ``response_format`` asks for, else the error that says where it is not."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        if finish_reason == "length":
            return OutputInvalid("the model's output stopped at max_output_tokens before its JSON was complete",
                                 code="output_truncated")
        return OutputInvalid("the model's output is not JSON", code="not_json")
    if isinstance(response_format, JsonObjectResponseFormat):
        if not isinstance(value, dict):
            return OutputInvalid("the model's output is JSON but not an object", code="not_json_object")
        return None
    from jsonschema.validators import validator_for  # loaded by the first job with a schema, not at cold start

    schema = response_format.json_schema.schema_
    validator = validator_for(schema)(schema)
    try:
        errors = sorted(validator.iter_errors(value), key=lambda error: (list(map(str, error.absolute_path)),
                                                                         str(error.validator)))
    except Exception:  # e.g. a $ref to an anchor the schema does not have: the schema's fault, not the output's
        return OutputInvalid("the model's output could not be checked against the schema", code="schema_unusable")
    if not errors:
        return None
    first = errors[0]
    rule = f"{first.validator}"
    if first.validator in ("type", "enum", "const", "required", "minimum", "maximum", "minLength", "maxLength",
                           "minItems", "maxItems", "pattern", "format", "additionalProperties"):
        rule += f" {json.dumps(first.validator_value)[:200]}"  # the schema's rule (from the schema, not the output)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return OutputInvalid(f"the model's output does not match the schema {response_format.json_schema.name} at "
                         f"{_path(first.absolute_path)}: it fails {rule}{more}", code="schema_mismatch")
