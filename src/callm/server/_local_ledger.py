"""The in-process ledger: exact admission in the event loop, SQLite underneath.

Every reservation and settlement runs in the event loop's thread without awaiting in
between, so each is atomic: no lock is needed and none is taken. The database is off the
hot path: keys and current spend are loaded at start, lookups are dictionary reads, and
usage is written in batches by a background task (every ``flush_every`` seconds, and at
close). Key changes are written before they are answered.

One process owns the state; several gateway processes need the fleet ledger.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from .._core.types import Usage
from ._ledger import KeyLimits, KeyUsage, Refused, Reservation, UsageRow, VirtualKey
from ._ledger_store import LedgerStore, UsageDelta

T = TypeVar("T")
_WINDOW = 60.0  # rpm and tpm count the last minute
_ZERO = Decimal(0)


@dataclass(slots=True)
class _KeyState:
    """One key's live counters."""

    key: VirtualKey
    key_hash: str
    period_start: float | None = None
    spent: Decimal = _ZERO
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    reserved_cost: Decimal = _ZERO
    in_flight: int = 0
    starts: deque[float] = field(default_factory=deque)  # request start times (rpm)
    # [time, tokens, in window (1/0)] per request (tpm)
    tokens: deque[list[float]] = field(default_factory=deque)
    tokens_total: int = 0


class LocalLedger:
    """:class:`~callm.server._ledger.Ledger` for one gateway process, kept in SQLite."""

    def __init__(self, path: Path, *, flush_every: float = 0.25) -> None:
        self.path = path
        self.flush_every = flush_every
        self._store: LedgerStore | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="callm-ledger")
        self._states: dict[str, _KeyState] = {}  # key id -> state (live keys only)
        self._by_hash: dict[str, _KeyState] = {}
        self._pending: dict[tuple[str, str, str], UsageDelta] = {}
        self._dirty_spend: set[str] = set()
        self._flusher: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()

    async def _db(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self._store = await self._db(LedgerStore, self.path)
        keys = await self._db(self._store.live_keys)
        spends = await self._db(self._store.spend)
        for key_hash, key in keys:
            state = self._add(key_hash, key)
            saved = spends.get(key.id)
            if saved is not None:
                (state.period_start, state.spent, state.calls) = saved[:3]
                (state.input_tokens, state.output_tokens) = saved[3:]
        self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        if self._store is not None:
            await self.flush()
            await self._db(self._store.close)
            self._store = None
        self._executor.shutdown(wait=True)

    def health(self) -> dict[str, Any]:
        return {"ready": True, "limits": "exact", "usage_queued": len(self._pending)}

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.flush_every)
            try:
                await self.flush()
            except Exception:  # a failed write is retried with the next batch
                import logging

                logging.getLogger("callm.server").warning(
                    "callm serve: could not write usage", exc_info=True
                )

    async def flush(self) -> None:
        """Write the usage and spend recorded since the last flush."""
        async with self._flush_lock:
            if not self._pending and not self._dirty_spend:
                return
            usage, self._pending = list(self._pending.values()), {}
            spend = [self._spend_row(k) for k in self._dirty_spend if k in self._states]
            self._dirty_spend = set()
            assert self._store is not None
            try:
                await self._db(self._store.write, usage, spend)
            except BaseException:
                for delta in usage:  # keep them for the next attempt
                    self._merge(delta)
                raise

    def _spend_row(self, key_id: str) -> tuple[str, float | None, str, int, int, int]:
        s = self._states[key_id]
        return (key_id, s.period_start, str(s.spent), s.calls, s.input_tokens, s.output_tokens)

    # --- keys ------------------------------------------------------------------------

    def _add(self, key_hash: str, key: VirtualKey) -> _KeyState:
        state = _KeyState(key, key_hash, period_start=_first_period(key))
        self._states[key.id] = self._by_hash[key_hash] = state
        return state

    async def find_key(self, key_hash: str) -> VirtualKey | None:
        state = self._by_hash.get(key_hash)
        if state is None or state.key.expired(time.time()):
            return None
        return state.key

    async def create_key(self, key_hash: str, key: VirtualKey) -> None:
        assert self._store is not None
        await self._db(self._store.insert_key, key_hash, key)
        self._add(key_hash, key)

    async def list_keys(self) -> list[VirtualKey]:
        return sorted((s.key for s in self._states.values()), key=lambda k: k.created_at)

    async def get_key(self, key_id: str) -> VirtualKey | None:
        state = self._states.get(key_id)
        return state.key if state is not None else None

    async def update_key(self, key_id: str, limits: KeyLimits, name: str) -> VirtualKey | None:
        state = self._states.get(key_id)
        if state is None:
            return None
        from dataclasses import replace

        key = replace(state.key, limits=limits, name=name)
        assert self._store is not None
        await self._db(self._store.update_key, key)
        state.key = key  # in effect for the very next request
        if limits.period_s is None:
            state.period_start = None
        elif state.period_start is None:
            state.period_start = time.time()
        return key

    async def revoke_key(self, key_id: str) -> bool:
        state = self._states.pop(key_id, None)
        if state is None:
            return False
        del self._by_hash[state.key_hash]  # the very next lookup fails
        assert self._store is not None
        await self._db(self._store.revoke_key, key_id, time.time())
        return True

    async def key_usage(self, key_id: str) -> KeyUsage:
        state = self._states.get(key_id)
        if state is None:
            return KeyUsage(_ZERO, None, 0, 0, 0, 0)
        self._roll_period(state, time.time())
        return KeyUsage(
            state.spent,
            state.period_start,
            state.in_flight,
            state.calls,
            state.input_tokens,
            state.output_tokens,
        )

    async def usage(self, since_day: str | None = None) -> list[UsageRow]:
        await self.flush()
        assert self._store is not None
        rows: list[UsageRow] = await self._db(self._store.usage, since_day)
        return rows

    # --- admission -------------------------------------------------------------------

    async def reserve(
        self, key: VirtualKey, model: str, *, tokens: int, cost: Decimal | None
    ) -> Reservation:
        state = self._states.get(key.id)
        if state is None:
            raise Refused("this key was revoked", code="invalid_api_key", status=401)
        now, wall = time.monotonic(), time.time()
        limits = state.key.limits
        self._roll_period(state, wall)
        _check_parallel(state, limits)
        _check_rpm(state, limits, now)
        _check_tpm(state, limits, now, tokens)
        held = _check_budget(state, limits, cost, wall)
        # Every check passed: hold the slot, the tokens and the cost, all at once.
        state.in_flight += 1
        state.starts.append(now)
        entry = [now, float(tokens), 1.0]
        state.tokens.append(entry)
        state.tokens_total += tokens
        state.reserved_cost += held
        return Reservation(key.id, model, tokens, held, now, handle=entry)

    async def settle(
        self, reservation: Reservation, usage: Usage, cost: Decimal | None, *, ok: bool = True
    ) -> None:
        if reservation.done:
            return
        reservation.done = True
        state = self._states.get(reservation.key_id)
        if state is not None:
            self._unhold(state, reservation, usage.total_tokens)
            self._roll_period(state, time.time())
            state.spent += cost or _ZERO
            state.calls += 1
            state.input_tokens += usage.input_tokens
            state.output_tokens += usage.output_tokens
            self._dirty_spend.add(reservation.key_id)
        self._merge(_delta(reservation, usage, cost, ok))

    async def release(self, reservation: Reservation) -> None:
        if reservation.done:
            return
        reservation.done = True
        state = self._states.get(reservation.key_id)
        if state is not None:
            self._unhold(state, reservation, 0)
        self._merge(_delta(reservation, Usage(), _ZERO, False))

    def _unhold(self, state: _KeyState, reservation: Reservation, used: int) -> None:
        state.in_flight -= 1
        state.reserved_cost -= reservation.cost
        entry = reservation.handle
        if entry is not None and entry[2]:
            # Still in the window: it now counts what was really used.
            state.tokens_total += used - int(entry[1])
            entry[1] = float(used)

    def _merge(self, delta: UsageDelta) -> None:
        key = (delta.day, delta.key_id, delta.model)
        found = self._pending.get(key)
        self._pending[key] = delta if found is None else found + delta

    def _roll_period(self, state: _KeyState, wall: float) -> None:
        """Start a new budget period once the current one has run out."""
        period = state.key.limits.period_s
        if period is None or state.period_start is None or wall < state.period_start + period:
            return
        elapsed = (wall - state.period_start) // period
        state.period_start += elapsed * period
        state.spent = _ZERO
        state.calls = state.input_tokens = state.output_tokens = 0
        self._dirty_spend.add(state.key.id)


def _first_period(key: VirtualKey) -> float | None:
    return key.created_at if key.limits.period_s is not None else None


class _Today:
    """Today's date in UTC, worked out once a day rather than once a call."""

    ends = 0.0  # when today ends (time.time())
    name = ""

    @classmethod
    def date(cls) -> str:
        now = time.time()
        if now >= cls.ends:
            cls.ends = (now // 86400 + 1) * 86400
            cls.name = time.strftime("%Y-%m-%d", time.gmtime(now))
        return cls.name


def _delta(reservation: Reservation, usage: Usage, cost: Decimal | None, ok: bool) -> UsageDelta:
    return UsageDelta(
        _Today.date(),
        reservation.key_id,
        reservation.model,
        calls=1,
        errors=0 if ok else 1,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost=cost or _ZERO,
        unpriced=1 if cost is None else 0,
    )


def _check_parallel(state: _KeyState, limits: KeyLimits) -> None:
    if limits.max_parallel is not None and state.in_flight >= limits.max_parallel:
        raise Refused(
            f"this key may have {limits.max_parallel} request(s) in flight; wait for one to finish",
            code="parallel_limit_exceeded",
            retry_after=1.0,
        )


def _check_rpm(state: _KeyState, limits: KeyLimits, now: float) -> None:
    starts = state.starts
    while starts and starts[0] <= now - _WINDOW:
        starts.popleft()
    if limits.rpm is not None and len(starts) >= limits.rpm:
        raise Refused(
            f"this key may make {limits.rpm} request(s) a minute",
            code="rpm_limit_exceeded",
            retry_after=max(0.001, starts[0] + _WINDOW - now),
        )


def _check_tpm(state: _KeyState, limits: KeyLimits, now: float, tokens: int) -> None:
    window = state.tokens
    while window and window[0][0] <= now - _WINDOW:
        old = window.popleft()
        old[2] = 0.0  # a settlement after this no longer touches the window
        state.tokens_total -= int(old[1])
    if limits.tpm is None or state.tokens_total + tokens <= limits.tpm:
        return
    if tokens > limits.tpm:
        raise Refused(
            f"this request may use {tokens} tokens (prompt and max_tokens), more than the "
            f"key's {limits.tpm} a minute: lower max_tokens or shorten the prompt",
            code="tpm_limit_exceeded",
        )
    freed, wait = state.tokens_total + tokens - limits.tpm, _WINDOW
    for started, used, _ in window:
        freed -= int(used)
        if freed <= 0:
            wait = started + _WINDOW - now
            break
    raise Refused(
        f"this key may use {limits.tpm} tokens a minute",
        code="tpm_limit_exceeded",
        retry_after=max(0.001, wait),
    )


def _check_budget(
    state: _KeyState, limits: KeyLimits, cost: Decimal | None, wall: float
) -> Decimal:
    """The cost to hold for this call, or Refused when the budget cannot cover it."""
    budget = limits.budget_usd
    if budget is None:
        return cost or _ZERO
    if cost is None:
        if limits.unknown_price == "refuse":
            raise Refused(
                "the price of this model is unknown and this key has a budget: use a "
                "model with a known price, or set the key's unknown_price to tokens_only",
                code="price_unknown",
                status=403,
            )
        return _ZERO
    if state.spent + state.reserved_cost + cost > budget:
        period, start = limits.period_s, state.period_start
        retry = (start + period - wall) if period is not None and start is not None else None
        raise Refused(
            f"this key's budget of ${budget} is spent (${state.spent} used, "
            f"${state.reserved_cost} held by calls in flight, this call may cost up to "
            f"${cost:.6f})",
            code="budget_exceeded",
            retry_after=retry,
        )
    return cost
