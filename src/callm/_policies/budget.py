"""Spend limits: a call that would pass one is refused before it is sent.

Spend is kept in the store, so a restart does not reset it; this process keeps a running
total per scope ("client", "user=u42" …) read from the store once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._core.errors import BudgetExceededError
from .._core.types import Response, Usage
from .base import Attempt, CallInfo, Policy

if TYPE_CHECKING:
    from decimal import Decimal

    from .._store import Store


@dataclass(frozen=True, slots=True)
class Budget:
    """A spend limit in USD for the client, and per tag value (e.g. ``{"user": {"u42": 1}}``).

    Spend is kept in the store, so a restart does not reset it. A call is refused before it
    is sent when the spend so far plus its estimated cost would pass a limit.
    """

    limit: Decimal | None = None
    per_tag: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)

    def scopes(self, tags: Mapping[str, str]) -> list[tuple[str, Decimal]]:
        """The (scope, limit) pairs a call with these tags is charged to."""
        from decimal import Decimal  # decimal costs ~5 ms to import: only budgets need it

        scopes = [("client", Decimal(self.limit))] if self.limit is not None else []
        for tag, limits in self.per_tag.items():
            value = tags.get(tag)
            if value is not None and value in limits:
                scopes.append((f"{tag}={value}", Decimal(limits[value])))
        return scopes


class BudgetPolicy(Policy):
    """Refuses a call that would pass a limit of ``budget``; charges what each reply cost."""

    def __init__(self, budget: Budget, store: Callable[[], Store]) -> None:
        self.budget = budget
        self._store = store
        self._spent: dict[str, Decimal] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"BudgetPolicy({self.budget!r})"

    def admit(self, attempt: Attempt) -> None:
        info = attempt.info
        estimate = estimate_cost(info, attempt.endpoint.provider)
        for scope, limit in self.budget.scopes(info.tags):
            spent = self.spent(scope)
            if spent + (estimate or 0) > limit or spent >= limit:
                raise BudgetExceededError(
                    f"the {scope} budget of ${limit} is spent (${spent} so far"
                    + (f", this call ~${estimate:.6f}" if estimate else "")
                    + "): raise the limit or wait for a new budget"
                )

    def succeeded(
        self, attempt: Attempt, response: Response, headers: Mapping[str, str]
    ) -> Response:
        if attempt.cached:
            return response
        cost = response.cost
        if cost is None and not response.usage.reported:
            # Unknown usage is not free: charge what the prompt and the reply would cost.
            cost = estimate_spend(attempt.info, attempt.endpoint.provider, response)
        if cost:
            self._charge(attempt.info.tags, cost)
        return response

    def spent(self, scope: str) -> Decimal:
        """Spend so far in a budget scope: read from the store once, then kept up to date."""
        with self._lock:
            total = self._spent.get(scope)
            if total is None:
                total = self._spent[scope] = self._store().spend(scope)
            return total

    def _charge(self, tags: Mapping[str, str], cost: Decimal) -> None:
        store = self._store()
        for scope, _ in self.budget.scopes(tags):
            self.spent(scope)  # loads the running total before adding to it
            with self._lock:
                self._spent[scope] += cost
            store.add_spend(scope, cost)


def estimate_spend(info: CallInfo, provider: str, response: Response) -> Decimal | None:
    """What a reply whose provider reported no usage cost, by local token estimates."""
    from dataclasses import replace

    from .cost import cost_of
    from .tokens import estimate

    prompt = estimate(info.request).tokens
    reply = estimate(replace(info.request, messages=(response.to_message(),), tools=())).tokens
    return cost_of(provider, info.request.model, Usage(prompt, reply))


def estimate_cost(info: CallInfo, provider: str) -> Decimal | None:
    """A cost estimate made before sending: the prompt's tokens plus max_tokens of output."""
    from .cost import cost_of
    from .tokens import estimate

    tokens = estimate(info.request).tokens
    usage = Usage(input_tokens=tokens, output_tokens=info.request.max_tokens or 0)
    return cost_of(provider, info.request.model, usage)
