"""Which model a call goes to: aliases, a routing function, load-balanced groups, fallbacks.

Pure decisions, no I/O: :class:`Routes` turns the model a caller named into the ordered
list of models to try, and keeps the per-deployment counters load balancing needs.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .._core.errors import (
    APIConnectionError,
    CallmError,
    ConfigurationError,
    ContextWindowExceededError,
    InternalServerError,
    RateLimitError,
)
from .._core.types import Request

Strategy = Literal["round_robin", "least_busy", "weighted"]
RouterFn = Callable[[Request, str | None], str | None]

# Errors that move a call to the next model of its fallback chain, unless told otherwise:
# the provider is overloaded, failing or unreachable after retries, or the prompt is too big.
DEFAULT_FALLBACK_ON: tuple[type[CallmError], ...] = (
    RateLimitError,
    InternalServerError,
    APIConnectionError,
    ContextWindowExceededError,
)
_MAX_ALIAS_DEPTH = 8


@dataclass(frozen=True, slots=True)
class Group:
    """Several deployments (or keys) of one model, balanced by ``strategy``.

    ``weights`` (for "weighted") pairs with ``models``; the others ignore it.
    """

    models: tuple[str, ...]
    strategy: Strategy = "round_robin"
    weights: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigurationError("a model group needs at least one model")
        if self.strategy == "weighted" and len(self.weights) != len(self.models):
            raise ConfigurationError("a weighted group needs one weight per model")


@dataclass
class Routes:
    """The routing configuration of a client, and the live state balancing needs."""

    aliases: Mapping[str, str] = field(default_factory=dict)
    fallbacks: Mapping[str, Sequence[str]] = field(default_factory=dict)
    groups: Mapping[str, Group] = field(default_factory=dict)
    router: RouterFn | None = None
    fallback_on: tuple[type[BaseException], ...] = DEFAULT_FALLBACK_ON
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _turns: dict[str, itertools.count[int]] = field(default_factory=dict, repr=False)
    _busy: dict[str, int] = field(default_factory=dict, repr=False)
    _served: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def active(self) -> bool:
        """Whether any routing is configured (else the named model is used as is)."""
        return bool(self.aliases or self.fallbacks or self.groups or self.router)

    def plan(self, model: str | None, request: Request) -> list[str | None]:
        """The models to try, in order: the chosen one first, then its fallbacks."""
        if self.router is not None:
            model = self.router(request, model) or model
        first = self._resolve(model)
        plan: list[str | None] = [first]
        for name in self.fallbacks.get(model or "", ()) or self.fallbacks.get(first or "", ()):
            resolved = self._resolve(name)
            if resolved not in plan:
                plan.append(resolved)
        return plan

    def _resolve(self, model: str | None) -> str | None:
        for _ in range(_MAX_ALIAS_DEPTH):
            if model is None:
                return None
            if model in self.groups:
                model = self._pick(model, self.groups[model])
            elif model in self.aliases:
                model = self.aliases[model]
            else:
                return model
        raise ConfigurationError(f"aliases and groups loop around {model!r}")

    def _pick(self, name: str, group: Group) -> str:
        with self._lock:
            if group.strategy == "least_busy":
                return min(group.models, key=lambda m: self._busy.get(m, 0))
            if group.strategy == "weighted":
                # Smooth weighted choice: the model furthest below its share goes next.
                served = [
                    self._served.get(m, 0.0) / w
                    for m, w in zip(group.models, group.weights, strict=True)
                ]
                choice = group.models[served.index(min(served))]
                self._served[choice] = self._served.get(choice, 0.0) + 1
                return choice
            turn = next(self._turns.setdefault(name, itertools.count()))
            return group.models[turn % len(group.models)]

    def started(self, model: str) -> None:
        """A call to ``model`` is in flight (for least-busy balancing)."""
        with self._lock:
            self._busy[model] = self._busy.get(model, 0) + 1

    def ended(self, model: str) -> None:
        with self._lock:
            self._busy[model] = max(0, self._busy.get(model, 0) - 1)

    def falls_back(self, error: BaseException) -> bool:
        """Whether ``error`` moves the call on to the next model of the plan."""
        return isinstance(error, self.fallback_on)
