"""What genai-prices knows of a model: its context window and its prices per million tokens."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """A model's context window and base prices in USD per million tokens (None: unknown)."""

    context_window: int | None
    input_per_mtok: Decimal | None
    output_per_mtok: Decimal | None


def model_facts(provider: str, model: str, protocol: str | None = None) -> ModelFacts:
    """The facts genai-prices has for ``provider``'s ``model`` (all None when it has none)."""
    from .._policies.cost import FREE_PROVIDERS, _lookup

    if provider in FREE_PROVIDERS:
        return ModelFacts(None, Decimal(0), Decimal(0))
    info = _lookup(provider, model, protocol)
    if info is None:
        return ModelFacts(None, None, None)
    window = getattr(info, "context_window", None)
    prices: Any = info.prices
    if isinstance(prices, list):  # prices that hold under conditions: the first is the base
        prices = prices[0].prices if prices else None
    return ModelFacts(
        window if isinstance(window, int) and window > 0 else None,
        _base(getattr(prices, "input_mtok", None)),
        _base(getattr(prices, "output_mtok", None)),
    )


def _base(price: Any) -> Decimal | None:
    """A flat price, or the first tier of a tiered one."""
    if price is None:
        return None
    if isinstance(price, Decimal):
        return price
    base = getattr(price, "base", None)
    return base if isinstance(base, Decimal) else None


def window_text(tokens: int | None) -> str:
    """``128k``, ``1M``, or ``?``."""
    if tokens is None:
        return "?"
    if tokens >= 1_000_000 and tokens % 1_000_000 == 0:
        return f"{tokens // 1_000_000}M"
    if tokens >= 1_000:
        return f"{tokens / 1000:g}k"
    return str(tokens)


def price_text(price: Decimal | None) -> str:
    return "?" if price is None else f"${price.normalize():f}"
