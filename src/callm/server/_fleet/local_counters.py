"""The same counters as ``RedisCounters``, kept in this process: a fleet instance's limits
when it has no Redis, or when Redis is unreachable and the gateway is configured to fall back.

Limits then hold per instance, not across the fleet (with N instances a key may get up to
N times its rpm); the gateway says so in ``/ready``. Every method runs without awaiting in
between, so each decision is atomic in the event loop. The rules are ``lua.py``'s, line by
line, so that the two implementations pass the same tests.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .counters import Decision, Limits, Totals

_WINDOW = 60_000


@dataclass(slots=True)
class _State:
    ps: int = -1
    spent: int = 0
    reserved: int = 0
    calls: int = 0
    itok: int = 0
    otok: int = 0
    tsum: int = 0
    revoked: bool = False
    window: dict[str, list[int]] = field(default_factory=dict)  # id -> [start, tokens], in order
    leases: dict[str, int] = field(default_factory=dict)  # id -> cost held


class LocalCounters:
    """Per-instance counters with the interface of :class:`RedisCounters`."""

    def __init__(self) -> None:
        self._states: dict[str, _State] = {}
        self._revoked: set[str] = set()

    def forget(self) -> None:
        """Drop every key's state (it is loaded again from the database when next used)."""
        self._states.clear()

    async def reserve(
        self, key_id: str, rid: str, *, tokens: int, cost: int, limits: Limits
    ) -> Decision:
        if key_id in self._revoked:
            return Decision("revoked")
        state = self._states.get(key_id)
        if state is None:
            return Decision("unloaded")
        now = _now()
        _trim(state, now)
        _roll(state, limits.period_ms, now)
        refused = _check(state, limits, tokens, cost, now)
        if refused is not None:
            return refused
        state.leases[rid] = cost
        state.window[rid] = [now, tokens]
        state.reserved += cost
        state.tsum += tokens
        return Decision(None, now_ms=now)

    async def settle(
        self,
        key_id: str,
        rid: str,
        *,
        tokens: int,
        cost: int,
        input_tokens: int,
        output_tokens: int,
        period_ms: int | None,
    ) -> int | None:
        state = self._states.get(key_id)
        if state is None:
            raise LookupError(key_id)
        _unlease(state, rid)
        _recount(state, rid, tokens)
        _roll(state, period_ms, _now())
        state.spent += cost
        state.calls += 1
        state.itok += input_tokens
        state.otok += output_tokens
        return None if state.ps < 0 else state.ps

    async def release(self, key_id: str, rid: str) -> None:
        state = self._states.get(key_id)
        if state is not None:
            _unlease(state, rid)
            _recount(state, rid, 0)

    async def renew(self, held: Mapping[str, Sequence[str]]) -> None:
        """Nothing to do: a lease in this process dies with the process."""

    async def load(self, key_id: str, totals: Totals) -> bool:
        if key_id in self._states:
            return False
        start = -1 if totals.period_start_ms is None else totals.period_start_ms
        self._states[key_id] = _State(
            start, totals.spent, 0, totals.calls, totals.input_tokens, totals.output_tokens
        )
        return True

    async def totals(self, key_id: str, period_ms: int | None) -> Totals | None:
        state = self._states.get(key_id)
        if state is None:
            return None
        now = _now()
        _trim(state, now)
        _roll(state, period_ms, now)
        start = None if state.ps < 0 else state.ps
        return Totals(
            start,
            state.spent,
            state.reserved,
            state.calls,
            state.itok,
            state.otok,
            len(state.leases),
        )

    async def set_period(self, key_id: str, period_ms: int | None) -> None:
        state = self._states.get(key_id)
        if state is None:
            return
        if period_ms is None or period_ms <= 0:
            state.ps = -1
        elif state.ps < 0:
            state.ps = _now()

    async def revoke(self, key_id: str) -> None:
        self._revoked.add(key_id)
        self._states.pop(key_id, None)


def _now() -> int:
    return int(time.time() * 1000)


def _trim(state: _State, now: int) -> None:
    window = state.window
    while window:
        rid, (start, tokens) = next(iter(window.items()))
        if start > now - _WINDOW:
            return
        del window[rid]
        state.tsum -= tokens


def _roll(state: _State, period: int | None, now: int) -> None:
    if period is None or period <= 0:
        return
    if state.ps < 0:
        state.ps = now
    elif now >= state.ps + period:
        state.ps += (now - state.ps) // period * period
        state.spent = state.calls = state.itok = state.otok = 0


def _check(state: _State, limits: Limits, tokens: int, cost: int, now: int) -> Decision | None:
    if limits.max_parallel is not None and len(state.leases) >= limits.max_parallel:
        return Decision("parallel")
    starts = [entry[0] for entry in state.window.values()]
    if limits.rpm is not None and len(starts) >= limits.rpm:
        wait = starts[0] + _WINDOW - now if starts else _WINDOW
        return Decision("rpm", retry_after=max(0.001, wait / 1000))
    tpm = limits.tpm
    if tpm is not None and state.tsum + tokens > tpm:
        if tokens > tpm:
            return Decision("tpm_never")
        need, wait = state.tsum + tokens - tpm, _WINDOW
        for start, used in state.window.values():
            need -= used
            if need <= 0:
                wait = start + _WINDOW - now
                break
        return Decision("tpm", retry_after=max(0.001, wait / 1000))
    budget = limits.budget
    if budget is not None and state.spent + state.reserved + cost > budget:
        retry = None
        if limits.period_ms is not None and state.ps >= 0:
            retry = max(0.001, (state.ps + limits.period_ms - now) / 1000)
        return Decision("budget", retry_after=retry, spent=state.spent, reserved=state.reserved)
    return None


def _unlease(state: _State, rid: str) -> None:
    held = state.leases.pop(rid, None)
    if held is not None:
        state.reserved -= held


def _recount(state: _State, rid: str, used: int) -> None:
    entry = state.window.get(rid)
    if entry is not None:
        state.tsum += used - entry[1]
        entry[1] = used
