"""What a model call costs: genai-prices' bundled price snapshot (offline: no network at run time), a local table of
overrides, and a documented fallback so that no model is ever free.

A model genai-prices does not know, and that is not overridden, is charged at ``FALLBACK_PER_MILLION`` (higher than
most models' list prices): its cost is an estimate, and ``known`` says so (jobs show ``price_known: false``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

MILLION = 1_000_000
# model: (input USD / 1M tokens, output USD / 1M tokens); wins over genai-prices
OVERRIDES_PER_MILLION: dict[str, tuple[Decimal, Decimal]] = {
    "fake-model": (Decimal("0.15"), Decimal("0.60")),  # the local fake model, priced as gpt-4o-mini
}
FALLBACK_PER_MILLION = (Decimal("10.00"), Decimal("30.00"))
COST_QUANTUM = Decimal("0.00000001")


@dataclass(frozen=True)
class Price:
    cost_usd: Decimal
    known: bool  # False: the model's price is unknown and cost_usd is the fallback's estimate


def estimate_cost(model: str, *, input_tokens: int, output_tokens: int) -> Price:
    """The cost of a call's usage: the override, else genai-prices (tiers included), else the fallback."""
    if model in OVERRIDES_PER_MILLION:
        return Price(_per_million(OVERRIDES_PER_MILLION[model], input_tokens, output_tokens), True)
    from genai_prices import Usage, calc_price  # its data loads on first use (about 0.5 s): most processes never price

    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    # genai-prices finds a model's provider from its name, except for some of OpenAI's (its embedding models): those
    # are looked for among OpenAI's models.
    for provider in (None, "openai"):
        try:
            cost = calc_price(usage, model_ref=model, provider_id=provider).total_price
        except LookupError:
            continue
        return Price(Decimal(cost).quantize(COST_QUANTUM), True)
    return Price(_per_million(FALLBACK_PER_MILLION, input_tokens, output_tokens), False)


def _per_million(prices: tuple[Decimal, Decimal], input_tokens: int, output_tokens: int) -> Decimal:
    return ((prices[0] * input_tokens + prices[1] * output_tokens) / Decimal(MILLION)).quantize(COST_QUANTUM)


# Images priced per image (OpenAI's list prices, standard quality), by model and size; None: any size. gpt-image-1
# reports its usage in tokens and is priced by them (genai-prices); a model reporting no image tokens is priced here.
PER_IMAGE: dict[tuple[str, str | None], Decimal] = {
    ("dall-e-2", "256x256"): Decimal("0.016"), ("dall-e-2", "512x512"): Decimal("0.018"),
    ("dall-e-2", "1024x1024"): Decimal("0.02"), ("dall-e-3", "1024x1024"): Decimal("0.04"),
    ("dall-e-3", "1024x1792"): Decimal("0.08"), ("dall-e-3", "1792x1024"): Decimal("0.08"),
    ("gpt-image-1", None): Decimal("0.042"),  # medium quality, 1024x1024
    ("fake-model", None): Decimal("0.04"),  # the local fake model, priced as dall-e-3
}
# An image model (or size) without a price: more than any listed image, so an unknown model is never cheap.
FALLBACK_PER_IMAGE = Decimal("0.25")


def image_cost(model: str, *, size: str | None, count: int, output_tokens: int = 0, input_tokens: int = 0) -> Price:
    """What ``count`` images cost: by the tokens the provider reported making them (gpt-image-1), else per image at
    the model's price for the size, else the fallback."""
    if output_tokens > 0:
        return estimate_cost(model, input_tokens=input_tokens, output_tokens=output_tokens)
    size = size if size not in (None, "auto") else "1024x1024"  # the models' default size
    each = PER_IMAGE.get((model, size)) or PER_IMAGE.get((model, None))
    return Price(((each or FALLBACK_PER_IMAGE) * count).quantize(COST_QUANTUM), each is not None)
