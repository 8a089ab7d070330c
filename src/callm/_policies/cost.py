"""What a call cost, in US dollars, from genai-prices' maintained price table.

``cost_of(provider, model, usage)`` is the whole API: a ``Decimal`` when the price is known,
``None`` when it is not (an unknown model is never reported as free). genai-prices is loaded on
the first call, so ``import callm`` stays light; without it installed every cost is ``None``.

genai-prices' own ``calc_price`` takes 150-300 µs a call — a fifth of a whole callm call on
loopback — so this module resolves each (provider, model) once, compiles the model's prices
into a small table once, and then prices each call with a few integer and ``Decimal``
operations (a few µs). The result equals ``genai_prices.calc_price`` for the same usage; the
tests check that against every model in the table.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from .._core.types import Response, Usage, priced
from .base import Attempt, Policy

if TYPE_CHECKING:
    from genai_prices.data_snapshot import DataSnapshot
    from genai_prices.types import ModelInfo, ModelPrice, TieredPrices

__all__ = ["FREE_PROVIDERS", "CostPolicy", "cost_of", "price_source", "warm_prices", "warm_up"]

log = logging.getLogger("callm")

# Models served on the user's own machine have a known price, and it is zero: nobody bills
# per token for them. This is a fact about the provider, not a guess about a missing price.
FREE_PROVIDERS: Final = frozenset({"ollama", "local"})

# callm's provider names -> genai-prices provider ids.
PROVIDER_IDS: Final[Mapping[str, str]] = {
    "openai": "openai",
    "openai-responses": "openai",
    "azure": "azure",  # the model is a deployment name; it is priced only if it names a model
    "anthropic": "anthropic",
    "gemini": "google",
    "groq": "groq",
    "mistral": "mistral",
    "deepseek": "deepseek",
    "together": "together",
    "xai": "x-ai",
    "openrouter": "openrouter",
    "bedrock": "aws",
    "vertex": "google",  # Google's table prices the Claude models on Vertex AI too
}

# A user-defined provider speaking a vendor's own wire protocol is almost always that vendor
# behind a proxy; the OpenAI-compatible protocols say nothing about who serves the model.
PROTOCOL_VENDORS: Final[Mapping[str, str]] = {"anthropic": "anthropic", "gemini": "google"}

# How callm's Usage maps onto genai-prices' usage keys. The two count the same way, so the
# numbers pass through unchanged and nothing is counted twice:
# - genai-prices' ``input_tokens`` is ALL prompt tokens; ``cache_read_tokens`` and
#   ``cache_write_tokens`` are parts of it, and it bills input_tokens minus those parts at the
#   input price (or all of it, when a model has no cache price). callm's ``input_tokens`` is
#   the same total for every provider (Anthropic's separate counts are summed on decoding).
# - ``output_tokens`` is all output, reasoning included; ``output_reasoning_tokens`` is a part
#   of it, split out only for the rare model that prices reasoning differently.
# "requests" is the per-call fee a few models charge; it counts 1.
_USAGE_KEYS: Final = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_reasoning_tokens",
    "requests",
)
_INPUT: Final = 0  # the whole prompt's size also picks the tier of a tiered price

_ZERO: Final = Decimal(0)


def cost_of(
    provider: str,
    model: str,
    usage: Usage,
    *,
    protocol: str | None = None,
    at: datetime | None = None,
) -> Decimal | None:
    """USD cost of one call, or None when the price is unknown (never a made-up 0).

    ``provider`` is callm's provider name and ``model`` the model as the provider named it
    (the response's model is best: it carries the dated version). ``protocol`` is the wire
    protocol of a user-defined provider; it helps to price an Anthropic or Gemini proxy.
    ``at`` is when the call was made (default now): some prices change by date or by hour.
    Never raises for an unknown model, an unknown provider or a missing genai-prices.
    Usage the provider never reported (``usage.reported`` False) has no cost either.
    """
    if provider in FREE_PROVIDERS:
        return _ZERO
    if not usage.reported:
        return None
    model_info = _lookup(provider, model, protocol)
    if model_info is None:
        return None
    return _table_for(model_info, at).cost(_counts(usage))


def warm_up() -> bool:
    """Load the price table now (about half a second) rather than on the first priced call.

    Returns whether prices are available (False when genai-prices is not installed).
    """
    return _snapshot() is not None


class CostPolicy(Policy):
    """Every reply gets its ``cost`` (None when the price is unknown) and ``tried``.

    Last in a client's policies, so it is the first to see a reply and every other policy
    reads the cost it set.
    """

    def succeeded(
        self, attempt: Attempt, response: Response, headers: Mapping[str, str]
    ) -> Response:
        if attempt.cached:  # a cached reply is free and already marked
            return response
        endpoint = attempt.endpoint
        model = response.model or attempt.info.request.model
        cost = cost_of(endpoint.provider, model, response.usage, protocol=endpoint.protocol)
        if not response.model:  # Bedrock's Converse names no model: the request did
            response = replace(response, model=model)
        return priced(response, cost, attempt.tried)


_warming: list[bool] = []


def warm_prices() -> None:
    """Load the price table once, in the background, so the first reply does not wait."""
    if _warming:
        return
    _warming.append(True)
    import threading

    threading.Thread(target=warm_up, name="callm-prices", daemon=True).start()


def price_source() -> str | None:
    """Where prices come from, e.g. ``"genai-prices 0.2.3 (bundled data)"``; None if absent."""
    snapshot = _snapshot()
    if snapshot is None:
        return None
    from genai_prices import __version__

    if snapshot.from_auto_update:
        return f"genai-prices {__version__} (data updated {snapshot.timestamp.isoformat()})"
    return f"genai-prices {__version__} (bundled data)"


# -- resolving (provider, model) to genai-prices' model, once ---------------------------------

_MAX_LOOKUPS = 4096  # model names come from responses; bound the cache against odd callers


class _Lookups:
    """(provider, model, protocol) -> genai-prices model, valid for one price snapshot.

    Plain dict operations under the GIL: two threads racing on a miss both resolve it and
    store the same answer, which is harmless.
    """

    def __init__(self) -> None:
        self.snapshot: object = None
        self.found: dict[tuple[str, str, str | None], ModelInfo | None] = {}

    def get(self, provider: str, model: str, protocol: str | None) -> ModelInfo | None:
        snapshot = _snapshot()
        if snapshot is None:
            return None
        if snapshot is not self.snapshot:  # genai-prices' UpdatePrices swapped in fresh data
            self.snapshot, self.found = snapshot, {}
        key = (provider, model, protocol)
        found = self.found  # one dict for the whole lookup, even if another thread swaps it
        try:
            return found[key]
        except KeyError:
            pass
        model_info = _resolve(snapshot, provider, model, protocol)
        if model_info is None:
            log.debug("callm: no price for %s/%s; cost is None", provider, model)
        if len(found) >= _MAX_LOOKUPS:
            found.clear()
        found[key] = model_info
        return model_info


_lookup = _Lookups().get


def _resolve(
    snapshot: DataSnapshot, provider: str, model: str, protocol: str | None
) -> ModelInfo | None:
    for provider_id, model_ref in _candidates(snapshot, provider, model, protocol):
        try:
            return snapshot.find_provider_model(model_ref, None, provider_id, None)[1]
        except LookupError:
            continue
    return None


def _candidates(
    snapshot: DataSnapshot, provider: str, model: str, protocol: str | None
) -> Iterator[tuple[str | None, str]]:
    """(genai-prices provider id or None for "match by model name", model ref), best first."""
    provider_id = PROVIDER_IDS.get(provider)
    if provider_id == "google":
        yield provider_id, model.removeprefix("models/")
    elif provider_id == "openrouter":
        yield provider_id, model
        vendor, _, name = model.partition("/")
        # OpenRouter passes vendors' prices through; "vendor/model:variant" ids (":free",
        # ":nitro") have prices of their own, so only plain ids fall back to the vendor.
        if name and ":" not in name:
            yield vendor, name
    elif provider_id is not None:
        yield provider_id, model
    else:
        # A user-defined provider: its name may be one genai-prices knows (fireworks,
        # perplexity, cerebras …); else the model name may say whose it is (gpt-, claude …).
        if any(p.id == provider for p in snapshot.providers):
            yield provider, model
        yield None, model
        proxied = PROTOCOL_VENDORS.get(protocol or "")
        if proxied is not None:
            yield proxied, model


def _snapshot() -> DataSnapshot | None:
    """genai-prices' current price data, or None when the library is not installed."""
    get_snapshot = _snapshot_source()
    return None if get_snapshot is None else get_snapshot()


@functools.cache
def _snapshot_source() -> Callable[[], DataSnapshot] | None:
    try:
        from genai_prices.data_snapshot import get_snapshot
    except ImportError:
        log.debug("callm: genai-prices is not installed; costs are None")
        return None
    return get_snapshot


# -- pricing a call ----------------------------------------------------------------------------


def _counts(usage: Usage) -> tuple[int, ...]:
    """callm's Usage as genai-prices' usage values, in _USAGE_KEYS order (see the note there)."""
    return (
        usage.input_tokens,
        usage.output_tokens,
        usage.cached_input_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
        1,
    )


@dataclass(frozen=True, slots=True)
class _Table:
    """One ModelPrice compiled for the usage callm reports.

    ``leaves``: (slot, slots of priced parts) in genai-prices' order, most specific first —
    a unit is billed for its count minus its separately priced parts. ``terms``: (slot, per,
    price) in the ModelPrice's own order, so the Decimal sum matches calc_price's exactly.
    """

    leaves: tuple[tuple[int, tuple[int, ...]], ...]
    terms: tuple[tuple[int, int, Decimal | TieredPrices], ...]

    def cost(self, counts: tuple[int, ...]) -> Decimal | None:
        billed = list(counts)
        for slot, parts in self.leaves:
            count = counts[slot]
            for part in parts:
                count -= billed[part]
            if count < 0:
                # e.g. more cached than total input tokens: the usage is inconsistent, and a
                # cost computed from it would be wrong either way.
                log.debug("callm: inconsistent usage %s; cost is None", counts)
                return None
            billed[slot] = count
        total = _ZERO
        for slot, per, price in self.terms:
            if billed[slot]:
                total += _rate(price, counts[_INPUT]) * billed[slot] / per
        return total


def _rate(price: Decimal | TieredPrices, prompt_tokens: int) -> Decimal:
    """The per-unit price; a tiered price switches wholly once the whole prompt (cached
    tokens included) passes a tier's start, as genai-prices and the vendors define it."""
    if isinstance(price, Decimal):
        return price
    for tier in reversed(price.tiers):
        if prompt_tokens > tier.start:
            return tier.price
    return price.base


_tables: dict[int, tuple[ModelPrice, _Table]] = {}  # id(ModelPrice) -> (it, its table)
_fixed: dict[int, tuple[ModelInfo, _Table]] = {}  # id(ModelInfo) -> table, for undated prices


def _table_for(model_info: ModelInfo, at: datetime | None) -> _Table:
    fixed = _fixed.get(id(model_info))
    if fixed is not None and fixed[0] is model_info:
        return fixed[1]
    # Dated or hourly prices (a price change, DeepSeek's off-peak hours) are picked per call.
    model_price = model_info.get_prices(at or datetime.now(UTC))
    entry = _tables.get(id(model_price))
    if entry is None or entry[0] is not model_price:
        if len(_tables) >= _MAX_LOOKUPS:  # price updates leave old tables behind
            _tables.clear()
            _fixed.clear()
        entry = _tables[id(model_price)] = (model_price, _compile(model_price))
    if not isinstance(model_info.prices, list):
        _fixed[id(model_info)] = (model_info, entry[1])
    return entry[1]


def _compile(model_price: ModelPrice) -> _Table:
    from genai_prices.data_units import unit_data

    usage_key_of = {unit.get("price_key", key): key for key, unit in unit_data.items()}
    # Prices for usage callm never reports (audio, images, web searches …) bill zero.
    priced = {
        usage_key_of[price_key]: value
        for price_key, value in vars(model_price).items()
        if value is not None and usage_key_of.get(price_key) in _USAGE_KEYS
    }
    dims = {key: unit_data[key].get("dimensions", {}).items() for key in priced}
    order = sorted(priced, key=lambda key: (-len(dims[key]), key))
    leaves = tuple(
        (
            _USAGE_KEYS.index(key),
            tuple(_USAGE_KEYS.index(k) for k in order if k != key and dims[key] <= dims[k]),
        )
        for key in order
        if key != "requests"
    )
    terms = tuple(
        (_USAGE_KEYS.index(key), int(unit_data[key]["per"]), price) for key, price in priced.items()
    )
    return _Table(leaves, terms)
