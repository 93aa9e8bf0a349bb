"""Cost estimates from a documented price table (USD per million tokens, list prices as of 2026-11).

Models that are not in the table get no estimate (``cost_usd`` null) rather than a wrong one.
"""

from __future__ import annotations

from decimal import Decimal

# model: (input USD / 1M tokens, output USD / 1M tokens)
PRICES_PER_MILLION: dict[str, tuple[Decimal, Decimal]] = {
    "gpt-4o": (Decimal("2.50"), Decimal("10.00")),
    "gpt-4o-mini": (Decimal("0.15"), Decimal("0.60")),
    "gpt-4.1": (Decimal("2.00"), Decimal("8.00")),
    "gpt-4.1-mini": (Decimal("0.40"), Decimal("1.60")),
    "gpt-4.1-nano": (Decimal("0.10"), Decimal("0.40")),
    "o4-mini": (Decimal("1.10"), Decimal("4.40")),
    "fake-model": (Decimal("0.15"), Decimal("0.60")),
}


def estimate_cost(model: str, *, input_tokens: int, output_tokens: int) -> Decimal | None:
    prices = PRICES_PER_MILLION.get(model)
    if prices is None:
        return None
    cost = (prices[0] * input_tokens + prices[1] * output_tokens) / Decimal(1_000_000)
    return cost.quantize(Decimal("0.00000001"))
