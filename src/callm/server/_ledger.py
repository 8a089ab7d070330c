"""Admission: the one interface between the gateway and where keys, limits and spend live.

::

    key = await ledger.find_key(key_hash)             # None: unknown or revoked
    ticket = await ledger.reserve(key, "openai/gpt-4o", tokens=900, cost=Decimal("0.01"))
    ...                                               # the call (raises Refused before it)
    await ledger.settle(ticket, usage, cost)          # the real usage, recorded once
    await ledger.release(ticket)                      # or: nothing was used after all

A reservation holds a request slot, the tokens and the cost the call may use at most; the
settlement swaps them for what it used. Reserve and settle are atomic with respect to each
other, so concurrent calls can neither overshoot a budget nor be refused for reservations
already released. :class:`~callm.server._local_ledger.LocalLedger` keeps the state in
process with SQLite underneath; a fleet implementation keeps it in shared stores behind
this same interface. Every method is async so that a networked store fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Protocol

from .._core.errors import CallmError
from .._core.types import Usage
from ._validate import period_seconds

UnknownPrice = Literal["refuse", "tokens_only"]


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """What one virtual key may do. ``None`` means no limit."""

    models: tuple[str, ...] = ("*",)
    budget_usd: Decimal | None = None
    budget_period: str | None = None  # "30d", "7d", "1d", "12h" …: the budget resets
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    expires_at: float | None = None  # Unix time
    # A call whose price is unknown, on a key with a budget: refuse it, or count its
    # tokens only (its spend then stays unknown).
    unknown_price: UnknownPrice = "refuse"

    @property
    def period_s(self) -> float | None:
        return period_seconds(self.budget_period)


@dataclass(frozen=True, slots=True)
class VirtualKey:
    """A virtual key as the gateway knows it: never the key itself, only its id and prefix."""

    id: str
    name: str
    prefix: str
    created_at: float
    limits: KeyLimits = field(default_factory=KeyLimits)

    def expired(self, now: float) -> bool:
        return self.limits.expires_at is not None and now >= self.limits.expires_at


@dataclass(slots=True)
class Reservation:
    """What one admitted call holds until it is settled or released."""

    key_id: str
    model: str
    tokens: int
    cost: Decimal
    started: float
    done: bool = False
    # Implementation-specific handles (a window entry, a row id …).
    handle: Any = None


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """A key's spend in its current budget period, and what it holds right now."""

    spent_usd: Decimal
    period_start: float | None
    in_flight: int
    calls: int
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Calls, tokens and cost of one key with one model on one day (UTC)."""

    day: str
    key_id: str
    model: str
    calls: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    unpriced_calls: int


class Refused(CallmError):
    """A call the key's limits do not admit: ``status`` 429 (or 403), ``code`` says which."""

    def __init__(
        self, message: str, *, code: str, status: int = 429, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.retry_after = retry_after


class Ledger(Protocol):
    """Keys, limits, reservations and usage: the gateway's only view of its shared state."""

    async def start(self) -> None:
        """Open the store and load what the hot path needs."""

    async def close(self) -> None:
        """Write out everything pending and close the store."""

    def health(self) -> dict[str, Any]:
        """The state of the stores, for ``/ready`` and the metrics: ``ready`` (False while
        calls are refused), ``limits`` ("exact" in one process, "shared" across a fleet,
        "per_instance" or "refusing" without Redis), and ``usage_queued`` (rows not yet
        written)."""

    async def find_key(self, key_hash: str) -> VirtualKey | None:
        """The live key with this hash (None when unknown or revoked)."""

    async def reserve(
        self, key: VirtualKey, model: str, *, tokens: int, cost: Decimal | None
    ) -> Reservation:
        """Hold a slot, ``tokens`` and ``cost`` (None: the price is unknown) or raise Refused."""

    async def settle(
        self, reservation: Reservation, usage: Usage, cost: Decimal | None, *, ok: bool = True
    ) -> None:
        """Replace the reservation by the real usage and cost, and record them."""

    async def release(self, reservation: Reservation) -> None:
        """Give back a reservation that used nothing (the call failed before any reply)."""

    async def create_key(self, key_hash: str, key: VirtualKey) -> None: ...

    async def list_keys(self) -> list[VirtualKey]: ...

    async def get_key(self, key_id: str) -> VirtualKey | None: ...

    async def update_key(self, key_id: str, limits: KeyLimits, name: str) -> VirtualKey | None: ...

    async def revoke_key(self, key_id: str) -> bool:
        """Revoke at once: the next lookup of this key fails."""

    async def key_usage(self, key_id: str) -> KeyUsage: ...

    async def usage(self, since_day: str | None = None) -> list[UsageRow]: ...


def limits_to_json(limits: KeyLimits) -> dict[str, object]:
    """Limits as the admin API shows and the store keeps them."""
    return {
        "models": list(limits.models),
        "budget_usd": str(limits.budget_usd) if limits.budget_usd is not None else None,
        "budget_period": limits.budget_period,
        "rpm": limits.rpm,
        "tpm": limits.tpm,
        "max_parallel": limits.max_parallel,
        "expires_at": limits.expires_at,
        "unknown_price": limits.unknown_price,
    }


def models_allowed(patterns: Sequence[str], names: Sequence[str]) -> bool:
    """Whether any of ``names`` (the model asked for, or all it may route to) is allowed."""
    from fnmatch import fnmatchcase

    return any(fnmatchcase(name, p) for name in names for p in patterns)
