"""Cost accounting against genai-prices' real price data: no dollar figure is written here.

Every expected cost comes from genai-prices itself (``calc_price`` or the model's own prices),
so the tests keep passing when prices change and fail when callm maps usage wrongly.
Run this file directly (``python tests/test_cost.py``) to print the per-call cost in µs.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import genai_prices
import pytest
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import ModelInfo, ModelPrice, Provider, TieredPrices
from hypothesis import given
from hypothesis import strategies as st

from callm._core.types import Usage
from callm._policies.cost import _table_for, cost_of, price_source, warm_up

# A fixed instant keeps dated and off-peak prices reproducible.
AT = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
MTOK = Decimal(1_000_000)


def genai_usage(usage: Usage) -> genai_prices.Usage:
    """The same call described in genai-prices' own terms (its input includes cached tokens)."""
    return genai_prices.Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
    )


def reference(model_ref: str, provider_id: str, usage: Usage, at: datetime = AT) -> Decimal:
    """What genai-prices' public calc_price says the call cost."""
    result = genai_prices.calc_price(
        genai_usage(usage), model_ref, provider_id=provider_id, genai_request_timestamp=at
    )
    return result.total_price


def prices_of(model_ref: str, provider_id: str) -> ModelPrice:
    _, model = get_snapshot().find_provider_model(model_ref, None, provider_id, None)
    return model.get_prices(AT)


def flat(price: Decimal | TieredPrices | None) -> Decimal:
    assert isinstance(price, Decimal), price
    return price


USAGES = [
    Usage(input_tokens=1_234, output_tokens=567),
    Usage(
        input_tokens=10_000, output_tokens=2_000, cached_input_tokens=6_000, reasoning_tokens=800
    ),
    Usage(
        input_tokens=50_000, output_tokens=10, cached_input_tokens=1_000, cache_write_tokens=40_000
    ),
    # Past the 200k tiers of long-context prices.
    Usage(
        input_tokens=300_000,
        output_tokens=4_000,
        cached_input_tokens=100_000,
        reasoning_tokens=4_000,
    ),
]


# -- the compiled tables agree with genai-prices for every model it knows ----------------------


def every_model() -> list[tuple[Provider, ModelInfo]]:
    return [(provider, model) for provider in get_snapshot().providers for model in provider.models]


def test_every_model_in_the_table_prices_like_calc_price() -> None:
    checked = 0
    for provider, model in every_model():
        for at in (AT, datetime(2025, 6, 1, 20, 0, tzinfo=UTC)):  # peak and off-peak hours
            table = _table_for(model, at)
            for usage in USAGES:
                try:
                    expected = model.calc_price(
                        genai_usage(usage), provider, genai_request_timestamp=at
                    ).total_price
                except ValueError:
                    # genai-prices refuses usage inconsistent with a model's price units;
                    # callm then reports the cost as unknown.
                    assert table.cost(counts(usage)) is None, (provider.id, model.id, usage)
                    continue
                assert table.cost(counts(usage)) == expected, (provider.id, model.id, usage)
                checked += 1
    assert checked > 5_000  # the whole table was exercised, not a handful of models


def counts(usage: Usage) -> tuple[int, ...]:
    from callm._policies.cost import _counts

    return _counts(usage)


# -- callm providers map onto genai-prices' ------------------------------------------------------

NAMED = [
    # (callm provider, model as callm sees it, genai-prices provider id, its model ref)
    ("openai", "gpt-4o-mini", "openai", "gpt-4o-mini"),
    ("openai", "gpt-4o-mini-2024-07-18", "openai", "gpt-4o-mini-2024-07-18"),
    ("openai-responses", "o3", "openai", "o3"),
    ("anthropic", "claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-3-5-haiku-20241022", "anthropic", "claude-3-5-haiku-20241022"),
    ("gemini", "gemini-2.5-flash", "google", "gemini-2.5-flash"),
    ("gemini", "models/gemini-2.5-pro", "google", "gemini-2.5-pro"),
    ("azure", "gpt-4o", "azure", "gpt-4o"),
    ("groq", "llama-3.1-8b-instant", "groq", "llama-3.1-8b-instant"),
    ("mistral", "codestral-latest", "mistral", "codestral-latest"),
    ("deepseek", "deepseek-chat", "deepseek", "deepseek-chat"),
    ("together", "MiniMaxAI/MiniMax-M3", "together", "MiniMaxAI/MiniMax-M3"),
    ("xai", "grok-3", "x-ai", "grok-3"),
    ("openrouter", "anthropic/claude-sonnet-4.5", "openrouter", "anthropic/claude-sonnet-4.5"),
    ("openrouter", "openai/gpt-4o-mini", "openrouter", "openai/gpt-4o-mini"),
]


@pytest.mark.parametrize(("provider", "model", "genai_provider", "genai_ref"), NAMED)
@pytest.mark.parametrize("usage", USAGES, ids=lambda u: f"in{u.input_tokens}")
def test_cost_equals_calc_price(
    provider: str, model: str, genai_provider: str, genai_ref: str, usage: Usage
) -> None:
    cost = cost_of(provider, model, usage, at=AT)
    assert cost is not None
    assert cost > 0
    assert cost == reference(genai_ref, genai_provider, usage)


def test_cached_reads_are_cheaper_than_fresh_input() -> None:
    prices = prices_of("gpt-4o-mini", "openai")
    discount = flat(prices.input_mtok) - flat(prices.cache_read_mtok)
    assert discount > 0  # the premise: this model has cache pricing
    fresh = cost_of("openai", "gpt-4o-mini", Usage(input_tokens=100_000, output_tokens=10))
    cached = cost_of(
        "openai",
        "gpt-4o-mini",
        Usage(input_tokens=100_000, output_tokens=10, cached_input_tokens=80_000),
    )
    assert fresh is not None
    assert cached is not None
    # The cached tokens are counted once, at the cache price, and not again as input.
    assert fresh - cached == discount * 80_000 / MTOK


def test_anthropic_cache_writes_cost_the_write_price() -> None:
    prices = prices_of("claude-sonnet-4-5", "anthropic")
    input_price, write_price = flat_base(prices.input_mtok), flat_base(prices.cache_write_mtok)
    assert write_price > input_price  # the premise: writing the cache costs extra
    plain = Usage(input_tokens=10_000, output_tokens=100)
    writing = Usage(input_tokens=10_000, output_tokens=100, cache_write_tokens=8_000)
    plain_cost = cost_of("anthropic", "claude-sonnet-4-5", plain)
    writing_cost = cost_of("anthropic", "claude-sonnet-4-5", writing)
    assert plain_cost is not None
    assert writing_cost is not None
    assert writing_cost - plain_cost == (write_price - input_price) * 8_000 / MTOK
    assert writing_cost == reference("claude-sonnet-4-5", "anthropic", writing, datetime.now(UTC))


def flat_base(price: Decimal | TieredPrices | None) -> Decimal:
    return price.base if isinstance(price, TieredPrices) else flat(price)


def test_reasoning_is_part_of_output_not_added_to_it() -> None:
    without = cost_of("openai", "o3", Usage(input_tokens=100, output_tokens=5_000), at=AT)
    with_reasoning = cost_of(
        "openai", "o3", Usage(input_tokens=100, output_tokens=5_000, reasoning_tokens=4_000), at=AT
    )
    assert without is not None
    assert with_reasoning == without
    prices = prices_of("o3", "openai")
    assert without == (flat(prices.input_mtok) * 100 + flat(prices.output_mtok) * 5_000) / MTOK


def test_reasoning_priced_apart_where_a_model_says_so() -> None:
    model = "perplexity/sonar-deep-research"
    prices = prices_of(model, "openrouter")
    assert flat(prices.output_reasoning_mtok) != flat(prices.output_mtok)  # the premise
    usage = Usage(input_tokens=100, output_tokens=5_000, reasoning_tokens=4_000)
    plain = cost_of("openrouter", model, Usage(input_tokens=100, output_tokens=5_000))
    split = cost_of("openrouter", model, usage)
    assert plain is not None
    assert split is not None
    assert split - plain == (
        (flat(prices.output_reasoning_mtok) - flat(prices.output_mtok)) * 4_000 / MTOK
    )
    assert split == reference(model, "openrouter", usage, datetime.now(UTC))


def test_long_prompts_pay_the_tier_price() -> None:
    prices = prices_of("claude-sonnet-4-5", "anthropic")
    tiered = prices.input_mtok
    assert isinstance(tiered, TieredPrices)  # the premise: a long-context tier exists
    start = tiered.tiers[0].start
    short, long = Usage(input_tokens=start), Usage(input_tokens=start + 1)
    short_cost = cost_of("anthropic", "claude-sonnet-4-5", short)
    long_cost = cost_of("anthropic", "claude-sonnet-4-5", long)
    assert short_cost == tiered.base * start / MTOK
    assert long_cost == tiered.tiers[0].price * (start + 1) / MTOK
    # Cached tokens count toward the prompt size that picks the tier.
    cached = Usage(input_tokens=start + 1, cached_input_tokens=start)
    assert cost_of("anthropic", "claude-sonnet-4-5", cached) == reference(
        "claude-sonnet-4-5", "anthropic", cached, datetime.now(UTC)
    )


def test_hourly_prices_follow_the_time_of_the_call() -> None:
    usage = Usage(input_tokens=100_000, output_tokens=10_000)
    peak, off_peak = AT, datetime(2025, 6, 1, 20, 0, tzinfo=UTC)
    at_peak = cost_of("deepseek", "deepseek-chat", usage, at=peak)
    at_night = cost_of("deepseek", "deepseek-chat", usage, at=off_peak)
    assert at_peak == reference("deepseek-chat", "deepseek", usage, peak)
    assert at_night == reference("deepseek-chat", "deepseek", usage, off_peak)
    assert at_peak != at_night  # the premise: DeepSeek discounts off-peak hours


# -- free, unknown and odd -----------------------------------------------------------------------


def test_zero_usage_costs_exactly_zero() -> None:
    cost = cost_of("openai", "gpt-4o-mini", Usage())
    assert isinstance(cost, Decimal)
    assert cost == 0


@pytest.mark.parametrize("provider", ["ollama", "local"])
def test_local_models_are_free_whatever_their_name(provider: str) -> None:
    assert cost_of(provider, "llama3.2:3b", USAGES[1]) == Decimal(0)
    assert cost_of(provider, "gpt-4o", USAGES[1]) == Decimal(0)


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-no-such-model"),
        ("anthropic", "not-a-claude"),
        ("azure", "prod-chat-deployment"),  # a deployment name that names no model
        ("my-vllm", "llama3.2"),  # self-hosted open model: no vendor price applies
        ("openrouter", "nobody/nothing"),
        ("openrouter", "x-ai/grok-4:free"),  # a variant with no price of its own
        ("gemini", ""),
    ],
)
def test_unknown_price_is_none_not_zero(provider: str, model: str) -> None:
    assert cost_of(provider, model, USAGES[0]) is None


def test_inconsistent_usage_is_unknown_not_wrong() -> None:
    # More cached tokens than prompt tokens cannot be billed; say so rather than guess.
    assert cost_of("openai", "gpt-4o-mini", Usage(input_tokens=10, cached_input_tokens=20)) is None


def test_openrouter_falls_back_to_the_vendor_price() -> None:
    usage = USAGES[1]
    assert cost_of("openrouter", "x-ai/grok-3", usage, at=AT) == reference("grok-3", "x-ai", usage)


def test_user_defined_providers_are_priced_by_model_name() -> None:
    usage = USAGES[1]
    assert cost_of("my-proxy", "gpt-4o-mini", usage, at=AT) == reference(
        "gpt-4o-mini", "openai", usage
    )
    # A provider genai-prices knows by the same name is priced as that provider.
    fireworks = "accounts/fireworks/models/deepseek-r1-0528"
    assert cost_of("fireworks", fireworks, usage, at=AT) == reference(fireworks, "fireworks", usage)


def test_a_gemini_protocol_proxy_is_priced_as_google() -> None:
    usage = USAGES[0]
    assert cost_of("my-proxy", "gemma-3", usage) is None  # the name alone says nothing
    assert cost_of("my-proxy", "gemma-3", usage, protocol="gemini", at=AT) == reference(
        "gemma-3", "google", usage
    )


@given(provider=st.text(max_size=20), model=st.text(max_size=40))
def test_never_raises_for_any_name(provider: str, model: str) -> None:
    cost = cost_of(provider, model, USAGES[1])
    assert cost is None or cost >= 0


def test_warm_up_and_source() -> None:
    assert warm_up()
    source = price_source()
    assert source is not None
    assert genai_prices.__version__ in source


# -- micro-timing, printed (speed goals live in bench/, not in timed tests) ---------------------


def _time(label: str, fn: Any, n: int = 20_000) -> None:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    print(f"{label:<48} {(time.perf_counter() - start) / n * 1e6:8.2f} µs/call")


def main() -> None:
    start = time.perf_counter()
    warm_up()
    print(f"warm_up (load genai-prices data)                 {time.perf_counter() - start:.3f} s")
    usage = USAGES[1]
    g_usage = genai_usage(usage)
    _time("cost_of openai/gpt-4o-mini", lambda: cost_of("openai", "gpt-4o-mini", usage))
    _time("cost_of anthropic (tiered)", lambda: cost_of("anthropic", "claude-sonnet-4-5", usage))
    _time("cost_of deepseek (hourly prices)", lambda: cost_of("deepseek", "deepseek-chat", usage))
    _time("cost_of unknown model (None)", lambda: cost_of("openai", "nope", usage))
    _time("cost_of local (free)", lambda: cost_of("local", "offline", usage))
    _time(
        "genai_prices.calc_price openai/gpt-4o-mini",
        lambda: genai_prices.calc_price(g_usage, "gpt-4o-mini", provider_id="openai"),
        n=2_000,
    )


if __name__ == "__main__":
    main()
