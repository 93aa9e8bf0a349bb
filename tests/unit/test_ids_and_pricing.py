from __future__ import annotations

from decimal import Decimal

from aijobs.ids import hash_api_key, new_api_key, new_job_id, new_ulid
from aijobs.models.messages import JobMessage
from aijobs.pricing import estimate_cost


def test_ulids_sort_by_creation_time() -> None:
    ids = [new_ulid(now_ms=ms) for ms in (1_700_000_000_000, 1_700_000_000_001, 1_800_000_000_000)]
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_job_ids_are_unguessable_and_valid_queue_messages() -> None:
    ids = {new_job_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(JobMessage(job_id=i).job_id == i for i in list(ids)[:10])


def test_api_keys_are_stored_as_a_hash_not_in_clear() -> None:
    key = new_api_key()
    digest = hash_api_key(key)
    assert key not in digest and len(digest) == 64 and digest == hash_api_key(key)


def test_cost_comes_from_the_price_table() -> None:
    # gpt-4o-mini: $0.15 / 1M input, $0.60 / 1M output
    assert estimate_cost("gpt-4o-mini", input_tokens=1_000_000, output_tokens=1_000_000) == Decimal("0.75")
    assert estimate_cost("gpt-4o-mini", input_tokens=1000, output_tokens=500) == Decimal("0.00045")


def test_unknown_model_has_no_cost_estimate() -> None:
    assert estimate_cost("my-own-llama", input_tokens=10, output_tokens=10) is None
