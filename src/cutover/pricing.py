"""Cost of one call: a target's price override, else ``genai-prices``.

Prices come from the `genai-prices` package (a maintained table of provider
prices). A target may override them (``price: {input_per_mtok, output_per_mtok}``)
for private deployments, fine-tunes, or the simulated models. When neither
knows the model, or the call reported no usage, the cost is ``None`` (unknown),
never 0: a report then says how many calls had an unknown cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

from cutover.targets import Price, Target

_PROVIDER_IDS = MappingProxyType({"openai": "openai", "anthropic": "anthropic"})


@dataclass(frozen=True, slots=True)
class PriceQuote:
    """Per-million-token prices and where they came from."""

    input_per_mtok: float
    output_per_mtok: float
    source: str  # "override" | "genai-prices"


def quote(target: Target) -> PriceQuote | None:
    """The price used for ``target``, or ``None`` when unknown."""
    if target.price is not None:
        return PriceQuote(target.price.input_per_mtok, target.price.output_per_mtok, "override")
    provider_id = _PROVIDER_IDS.get(target.provider)
    if provider_id is None:
        return None
    return _catalogue_quote(target.model, provider_id)


@lru_cache(maxsize=256)
def _catalogue_quote(model: str, provider_id: str) -> PriceQuote | None:
    # genai-prices is imported lazily: it loads a price table on import.
    from genai_prices import Usage, calc_price

    try:
        per_in = calc_price(
            Usage(input_tokens=1_000_000, output_tokens=0), model, provider_id=provider_id
        )
        per_out = calc_price(
            Usage(input_tokens=0, output_tokens=1_000_000), model, provider_id=provider_id
        )
    except LookupError:
        return None
    return PriceQuote(float(per_in.total_price), float(per_out.total_price), "genai-prices")


def cost_usd(
    price: PriceQuote | Price | None, input_tokens: int | None, output_tokens: int | None
) -> float | None:
    """Dollar cost of one call, ``None`` when the price or the usage is unknown."""
    if price is None or input_tokens is None or output_tokens is None:
        return None
    return (input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1_000_000


__all__ = ["PriceQuote", "cost_usd", "quote"]
