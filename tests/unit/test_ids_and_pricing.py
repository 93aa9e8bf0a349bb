from __future__ import annotations

from decimal import Decimal

from aijobs.ids import hash_api_key, new_api_key, new_job_id, new_ulid
from aijobs.models.messages import JobMessage
from aijobs.pricing import Price, estimate_cost


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


def test_cost_comes_from_genai_prices_offline() -> None:
    # gpt-4o-mini: $0.15 / 1M input, $0.60 / 1M output (genai-prices' bundled snapshot; sockets are off in unit tests)
    assert estimate_cost("gpt-4o-mini", input_tokens=1_000_000, output_tokens=1_000_000) == Price(Decimal("0.75"), True)
    assert estimate_cost("gpt-4o-mini", input_tokens=1000, output_tokens=500) == Price(Decimal("0.00045"), True)
    assert estimate_cost("gpt-4o", input_tokens=1000, output_tokens=0) == Price(Decimal("0.0025"), True)


def test_the_local_table_overrides_and_the_fake_model_is_priced() -> None:
    assert estimate_cost("fake-model", input_tokens=2, output_tokens=3) == Price(Decimal("0.0000021"), True)


def test_an_unknown_model_is_never_free_it_is_charged_at_the_fallback_and_says_so() -> None:
    # $10 / 1M input, $30 / 1M output
    assert estimate_cost("my-own-llama", input_tokens=1000, output_tokens=1000) == Price(Decimal("0.04"), False)
