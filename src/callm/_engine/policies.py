"""A client's policy sequence, from the options it was built with.

Each policy module is imported only when the client uses that policy, so ``import callm``
and a client with everything off stay light.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from .._policies.base import Policy
    from .._policies.budget import Budget
    from .._policies.cache import ResponseCache
    from .._policies.hooks import AfterHook, BeforeHook, ErrorHook
    from .._policies.ratelimit import RateLimit
    from .._store import Store


def default_policies(
    *,
    extra: Sequence[Policy],
    before_request: Sequence[BeforeHook],
    after_response: Sequence[AfterHook],
    on_error: Sequence[ErrorHook],
    log_path: Path,
    log: bool,
    tracing: bool,
    tracer_provider: TracerProvider | None,
    budget: Budget | None,
    cache: ResponseCache | None,
    rate_limits: Mapping[str, RateLimit] | RateLimit | None,
    store: Callable[[], Store],
) -> list[Policy]:
    """The policies in the order they run on the way out (see :mod:`callm._policies.base`):
    the caller's own first, then hooks, call log, tracing, budget, cache, rate limits, cost."""
    from .._policies.calllog import CallLogPolicy
    from .._policies.cost import CostPolicy, warm_prices

    warm_prices()
    policies = list(extra)
    if before_request or after_response or on_error:
        from .._policies.hooks import HooksPolicy

        policies.append(HooksPolicy(before_request, after_response, on_error))
    # Always there: a call can ask to be logged (log=True) when the client does not.
    policies.append(CallLogPolicy(log_path, default=log))
    if tracing:
        from .._policies.tracing import Tracing, TracingPolicy

        tracer = Tracing.if_available(tracer_provider)
        if tracer is not None:
            policies.append(TracingPolicy(tracer))
    if budget is not None:
        from .._policies.budget import BudgetPolicy

        policies.append(BudgetPolicy(budget, store))
    if cache is not None:
        from .._policies.cache import CachePolicy, CacheStore

        policies.append(
            CachePolicy(CacheStore(cache, store() if cache.backend == "sqlite" else None))
        )
    if rate_limits:
        from .._policies.ratelimit import RateLimiter, RateLimitPolicy

        policies.append(RateLimitPolicy(RateLimiter(rate_limits)))
    policies.append(CostPolicy())
    return policies
