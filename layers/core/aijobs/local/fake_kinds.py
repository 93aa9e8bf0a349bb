"""What the fake model makes besides chat text, deterministically: embedding vectors, PNG images, and JSON that fits
a JSON schema (structured outputs). Pure functions, so that the fake model's routes stay thin and tests can check
each one alone.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import math
import re
import struct
import zlib
from typing import Any

# The vectors' length when the request names no `dimensions` (OpenAI's text-embedding-3-small has 1,536; a smaller
# default keeps a fake 1,000-text job's answer small).
DEFAULT_DIMENSIONS = 256
MAX_DIMENSIONS = 3072
# An image's side is bounded: a fake image is one colour, and its size only has to be what was asked for.
MAX_SIDE = 2048


_WORD = re.compile(r"\w+")


def embedding(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """A unit vector: the sum of a hashed vector for each word of the text (lower-cased), so that texts sharing words
    are near, as a real model's would be for texts on one subject; the same text, the same vector (a text without
    words: its own hash)."""
    words = collections.Counter(_WORD.findall(text.lower()) or [text])
    values = [0.0] * dimensions
    for word, times in words.items():
        values = [a + times * b for a, b in zip(values, _hashed(word, dimensions), strict=True)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


@functools.lru_cache(maxsize=65_536)
def _hashed(word: str, dimensions: int) -> tuple[float, ...]:
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{word}".encode()).digest()
        values += [(byte - 127.5) / 127.5 for byte in digest]
        counter += 1
    return tuple(values[:dimensions])


_SOURCE = re.compile(r"^\[(\d+)\] (.+?)(?:(?<=[.!?])\s|$)", re.MULTILINE)


def cited_answer(user_text: str) -> str | None:
    """The answer to numbered sources and a question (an answer job's prompt, aijobs/providers.py): the first
    sentence of the first two sources, each with its number cited; None for any other message."""
    if not user_text.startswith("Sources:") or "\nQuestion: " not in user_text:
        return None
    found = _SOURCE.findall(user_text.rpartition("\nQuestion: ")[0])[:2]
    if not found:
        return "The sources do not answer the question."
    return " ".join(f"{sentence.strip().rstrip('.!?')} [{number}]." for number, sentence in found)


def png(prompt: str, width: int, height: int) -> bytes:
    """A valid PNG of ``width`` x ``height`` in one colour derived from the prompt (zlib keeps it small)."""
    red, green, blue = hashlib.sha256(prompt.encode()).digest()[:3]
    row = b"\x00" + bytes((red, green, blue)) * width  # filter byte 0, then RGB pixels

    def block(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (b"\x89PNG\r\n\x1a\n" + block(b"IHDR", header) + block(b"IDAT", zlib.compress(row * height, 9))
            + block(b"IEND", b""))


def image_size(size: str | None) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` (default and ``auto``: 1024x1024); ValueError for anything else or a side over MAX_SIDE."""
    if size in (None, "auto"):
        return 1024, 1024
    width, _, height = str(size).partition("x")
    if not (width.isdigit() and height.isdigit()) or not 0 < int(width) <= MAX_SIDE or not 0 < int(height) <= MAX_SIDE:
        raise ValueError("size must be WIDTHxHEIGHT")
    return int(width), int(height)


def fitting(schema: dict[str, Any], text: str) -> Any:
    """A value that fits a JSON schema (the subset structured outputs use): objects with all their properties,
    arrays of ``minItems`` (at least one) items, enums' and consts' first values, strings that echo ``text``."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return fitting(schema[key][0], text)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return {name: fitting(part, text) for name, part in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [fitting(schema.get("items") or {}, text) for _ in range(max(1, schema.get("minItems", 1)))]
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "number":
        return float(schema.get("minimum", 0))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return text[: schema["maxLength"]] if "maxLength" in schema else text


def unfitting(schema: dict[str, Any]) -> Any:
    """JSON that does not fit an object schema (for the ``[[invalid_json]]`` directive): its required properties
    left out, and one of the wrong type."""
    properties = schema.get("properties") or {}
    return {"unexpected": 1} if not properties else {next(iter(properties)): {"not": "what the schema says"}}
