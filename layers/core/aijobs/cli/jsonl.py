"""A batch run's input: the JSONL file of prompts, its bad lines, its chunks and their idempotency keys."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHUNK_SIZE = 100  # POST /v1/jobs/batch takes at most 100 jobs
KEY_PREFIX = "aijobs-cli-"


@dataclass(frozen=True)
class Prompt:
    """One good line: its number (from 1), its custom_id (``line-N`` when it gives none) and its job request."""

    line: int
    custom_id: str
    job: dict[str, Any]


@dataclass(frozen=True)
class BadLine:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class PromptFile:
    sha256: str
    prompts: list[Prompt] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)


def parse_line(number: int, text: str, defaults: dict[str, Any] | None = None) -> Prompt | BadLine | None:
    """A line as a prompt: a JSON object (``custom_id`` plus any job field) or a JSON string (the input).
    Blank lines are None; anything else is a BadLine that says why, without echoing the line."""
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        where = "" if exc.msg.endswith(" at") else " at"  # "Unterminated string starting at"
        return BadLine(number, f"not JSON ({exc.msg}{where} column {exc.colno})")
    except RecursionError:
        return BadLine(number, "JSON nested too deep")
    if isinstance(value, str):
        value = {"input": value}
    if not isinstance(value, dict):
        return BadLine(number, f"a JSON {type(value).__name__}, not an object or a string")
    job = {**(defaults or {}), **value}
    custom_id = job.pop("custom_id", f"line-{number}")
    if not isinstance(custom_id, str) or not custom_id:
        return BadLine(number, "custom_id must be a non-empty string")
    if job.get("input") in (None, "", []) and "prompt" not in job:
        return BadLine(number, "no input")
    return Prompt(number, custom_id, job)


def read_prompts(path: Path, defaults: dict[str, Any] | None = None) -> PromptFile:
    """Every line of the file, good or bad; a custom_id used twice is bad the second time."""
    data = path.read_bytes()
    parsed = PromptFile(hashlib.sha256(data).hexdigest())
    seen: dict[str, int] = {}
    for number, raw in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        item = parse_line(number, raw, defaults)
        if isinstance(item, Prompt) and item.custom_id in seen:
            item = BadLine(number, f"custom_id already used on line {seen[item.custom_id]}")
        if isinstance(item, Prompt):
            seen[item.custom_id] = number
            parsed.prompts.append(item)
        elif isinstance(item, BadLine):
            parsed.bad.append(item)
    return parsed


def chunked(prompts: list[Prompt], size: int = CHUNK_SIZE) -> list[list[Prompt]]:
    return [prompts[start:start + size] for start in range(0, len(prompts), size)]


def chunk_key(file_sha256: str, label: str, chunk: list[Prompt]) -> str:
    """The Idempotency-Key of a chunk (``label``: its index, or ``retry-N`` for prompts the tenant's rate
    refused): the same file, chunk and jobs give the same key, so a resumed run's re-sent chunk is answered with
    the jobs the first send made (the server keeps keys 24 h)."""
    digest = hashlib.sha256(f"{file_sha256}:{label}:".encode())
    for prompt in chunk:
        digest.update(json.dumps([prompt.custom_id, prompt.job], sort_keys=True, separators=(",", ":")).encode())
    return KEY_PREFIX + digest.hexdigest()[:48]
