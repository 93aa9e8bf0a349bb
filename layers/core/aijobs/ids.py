"""Identifiers: sortable, unguessable ULIDs (python-ulid) with a prefix per kind, and API keys."""

from __future__ import annotations

import hashlib
import secrets

from ulid import ULID


def new_ulid(now_ms: int | None = None) -> str:
    """48 bits of milliseconds then 80 random bits, Crockford base32: ids sort by creation."""
    return str(ULID() if now_ms is None else ULID.from_timestamp(now_ms / 1000))


def new_job_id() -> str:
    return f"job_{new_ulid()}"


def job_id_range(created_from: int | None, created_before: int | None) -> tuple[str, str]:
    """The job ids (sort keys) of the jobs created from ``created_from`` up to before ``created_before`` (unix
    seconds; None: no bound): a ULID starts with its milliseconds, 10 characters that sort as the time does."""
    # from_timestamp reads an int as milliseconds, a float as seconds
    low = str(ULID.from_timestamp(float(created_from)))[:10] + "0" * 16 if created_from is not None else "0" * 26
    high = (str(ULID.from_timestamp(created_before - 0.001))[:10] + "Z" * 16 if created_before is not None
            else "Z" * 26)
    return f"job_{low}", f"job_{high}"


def derived_job_id(*, seed: str, at_ms: int) -> str:
    """A job id fixed by ``seed`` and a time: the same fire of a schedule always names the same job.

    It sorts by ``at_ms`` like any job id; its other 80 bits are the start of a SHA-256 of the seed.
    """
    return f"job_{ULID.from_bytes(at_ms.to_bytes(6, 'big') + hashlib.sha256(seed.encode()).digest()[:10])}"


def new_schedule_id() -> str:
    return f"sch_{new_ulid()}"


def new_batch_id() -> str:
    return f"bat_{new_ulid()}"


def new_collection_id() -> str:
    return f"col_{new_ulid()}"


def new_document_id() -> str:
    return f"doc_{new_ulid()}"


def new_query_id() -> str:
    return f"qry_{new_ulid()}"


def new_prompt_id() -> str:
    """A registry prompt's id: ``pmpt_`` as OpenAI's prompt ids."""
    return f"pmpt_{new_ulid()}"


def new_webhook_id() -> str:
    return f"msg_{new_ulid()}"


def destination_webhook_id(event_id: str, endpoint_id: str | None) -> str:
    """The ``webhook-id`` of one event at one destination: the event's own id at the job's callback_url, else one
    fixed by the event and the endpoint, so every retry and redelivery to that endpoint carries the same id.

    It keeps the event's time (its first 10 characters) and takes its other 80 bits from a SHA-256 of both ids.
    """
    if endpoint_id is None:
        return event_id
    ulid = ULID.from_str(event_id.removeprefix("msg_"))
    seed = hashlib.sha256(f"{event_id}#{endpoint_id}".encode()).digest()[:10]
    return f"msg_{ULID.from_bytes(ulid.bytes[:6] + seed)}"


def new_endpoint_id() -> str:
    return f"we_{new_ulid()}"


def new_key_id() -> str:
    """An API key's public id: what lists and revocation name, never the key or its hash."""
    return f"key_{new_ulid()}"


def new_api_key() -> str:
    return f"aj_{secrets.token_urlsafe(32)}"


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
