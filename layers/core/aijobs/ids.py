"""Identifiers: sortable, unguessable job ids and API keys."""

from __future__ import annotations

import hashlib
import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _ulid(ms: int, low_bits: int) -> str:
    value = (ms << 80) | low_bits
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def new_ulid(now_ms: int | None = None) -> str:
    """A ULID: 48 bits of milliseconds then 80 random bits, Crockford base32, so ids sort by creation."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return _ulid(ms, secrets.randbits(80))


def new_job_id() -> str:
    return f"job_{new_ulid()}"


def derived_job_id(*, seed: str, at_ms: int) -> str:
    """A job id fixed by ``seed`` and a time: the same fire of a schedule always names the same job.

    It sorts by ``at_ms`` like any job id; its other 80 bits come from a SHA-256 of the seed.
    """
    return f"job_{_ulid(at_ms, int.from_bytes(hashlib.sha256(seed.encode()).digest()[:10]))}"


def new_schedule_id() -> str:
    return f"sch_{new_ulid()}"


def new_api_key() -> str:
    return f"aj_{secrets.token_urlsafe(32)}"


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
