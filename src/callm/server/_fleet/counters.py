"""A fleet's live counters in Redis: rpm, tpm, requests in flight and budget, per virtual key.

Each decision is one script run (``lua.py``), atomic in Redis, so any number of gateway
instances share exact limits. Money is counted in whole nano-dollars (Redis and Lua count
in integers): a cost is rounded up and a budget down, so rounding can only refuse a call a
nano-dollar early, never let spend pass a budget. Counts stay exact up to 2**53 nano-dollars
(about nine million dollars) per key and period.

Reservations are leases: the instance that holds one renews it (``renew``) while the call
runs; if the instance dies, the lease expires and the next decision on that key gives its
slot and cost back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Any, Literal

from . import lua

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster
    from redis.commands.core import AsyncScript

NONE = -1  # "no limit" in the scripts' arguments
_RENEW_CHUNK = 1000  # ids per renewal script (Lua's unpack has a stack limit)


def to_units(amount: Decimal, *, up: bool = True) -> int:
    """USD as whole nano-dollars: costs round up, budgets down (never an overshoot)."""
    return int(amount.scaleb(9).to_integral_value(ROUND_CEILING if up else ROUND_FLOOR))


def from_units(units: int) -> Decimal:
    return Decimal(units).scaleb(-9)


@dataclass(frozen=True, slots=True)
class Limits:
    """One key's limits as the scripts take them (``None``: no limit)."""

    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget: int | None = None  # nano-dollars
    period_ms: int | None = None

    def args(self) -> list[int]:
        values = (self.rpm, self.tpm, self.max_parallel, self.budget, self.period_ms)
        return [NONE if v is None else v for v in values]


@dataclass(frozen=True, slots=True)
class Totals:
    """A key's spend in its current period (nano-dollars) and what it holds right now."""

    period_start_ms: int | None = None
    spent: int = 0
    reserved: int = 0
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    in_flight: int = 0


Reason = Literal["revoked", "unloaded", "parallel", "rpm", "tpm", "tpm_never", "budget"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What ``reserve`` decided: ``reason`` None means admitted (at ``now_ms``)."""

    reason: Reason | None
    now_ms: int = 0
    retry_after: float | None = None  # seconds
    spent: int = 0
    reserved: int = 0


class RedisCounters:
    """The scripts, bound to one Redis (or Redis Cluster) client."""

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        prefix: str = "callm",
        lease_s: float = 30.0,
        max_connections: int = 32,
    ) -> None:
        self.client = client
        # At most this many commands at once: the pool's size (a cluster client's pool
        # raises instead of waiting when it runs out).
        self._slots = asyncio.Semaphore(max_connections)
        self.prefix = prefix
        self.lease_ms = round(lease_s * 1000)
        scripts = {name: client.register_script(getattr(lua, name)) for name in _SCRIPTS}
        self._scripts: dict[str, AsyncScript] = scripts

    def keys(self, key_id: str) -> list[str]:
        """The key's Redis keys, hash-tagged by its id: one Cluster slot for all four."""
        tag = f"{self.prefix}:{{{key_id}}}"
        return [f"{tag}:s", f"{tag}:w", f"{tag}:l", f"{tag}:r"]

    async def _run(self, name: str, key_id: str, args: Sequence[str | int]) -> Any:
        async with self._slots:
            return await self._scripts[name](keys=self.keys(key_id), args=list(args))

    async def reserve(
        self, key_id: str, rid: str, *, tokens: int, cost: int, limits: Limits
    ) -> Decision:
        """Hold a slot, ``tokens`` and ``cost`` under ``limits``, or say why not."""
        args: list[str | int] = [rid, tokens, cost, *limits.args(), self.lease_ms]
        reply = await self._run("RESERVE", key_id, args)
        reason = _text(reply[0])
        if reason == "ok":
            return Decision(None, now_ms=int(reply[1]))
        wait = int(reply[1]) if len(reply) > 1 else NONE
        retry = max(0.001, wait / 1000) if wait >= 0 else None
        if reason == "budget":
            return Decision(
                "budget", retry_after=retry, spent=int(reply[2]), reserved=int(reply[3])
            )
        return Decision(reason, retry_after=retry)  # type: ignore[arg-type]

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
        """Swap the reservation for what the call used; the period start it counted in
        (None: no period). Raises LookupError when Redis has lost the key's state."""
        args: list[str | int] = [rid, tokens, cost, input_tokens, output_tokens]
        args.append(_or_none(period_ms))
        start = int(await self._run("SETTLE", key_id, args))
        if start == -2:
            raise LookupError(key_id)
        return None if start < 0 else start

    async def release(self, key_id: str, rid: str) -> None:
        """Give back a reservation that used nothing."""
        await self._run("RELEASE", key_id, [rid])

    async def renew(self, held: Mapping[str, Sequence[str]]) -> None:
        """Extend the leases of the calls still running: one round trip on one Redis; on a
        Cluster (whose pipelines take no scripts) one script per key, all at once."""
        batches: list[tuple[str, list[str | int]]] = [
            (key_id, [self.lease_ms, *rids[i : i + _RENEW_CHUNK]])
            for key_id, rids in held.items()
            for i in range(0, len(rids), _RENEW_CHUNK)
        ]
        if not batches:
            return
        from redis.asyncio.cluster import RedisCluster

        if isinstance(self.client, RedisCluster):
            await asyncio.gather(*(self._run("RENEW", k, args) for k, args in batches))
            return
        # ``async with``: redis-py's execute() loads the scripts on a connection before the
        # part that always gives it back, so a renewal cancelled or failed there kept it
        # (counted in use until the pipeline was finalised, with an "unclosed" warning).
        async with self.client.pipeline(transaction=False) as pipe:
            for key_id, args in batches:
                await self._scripts["RENEW"](keys=self.keys(key_id), args=args, client=pipe)
            async with self._slots:
                await pipe.execute()

    async def load(self, key_id: str, totals: Totals) -> bool:
        """Give Redis the key's stored state unless it has one (True: it was set)."""
        start = NONE if totals.period_start_ms is None else totals.period_start_ms
        args = [start, totals.spent, totals.calls, totals.input_tokens, totals.output_tokens]
        return bool(await self._run("LOAD", key_id, args))

    async def totals(self, key_id: str, period_ms: int | None) -> Totals | None:
        """The key's current totals (None: Redis has no state for it)."""
        reply = await self._run("TOTALS", key_id, [_or_none(period_ms)])
        if _text(reply[0]) == "unloaded":
            return None
        ps, spent, reserved, calls, itok, otok = (int(v or 0) for v in reply[:6])
        return Totals(ps if ps >= 0 else None, spent, reserved, calls, itok, otok, int(reply[6]))

    async def set_period(self, key_id: str, period_ms: int | None) -> None:
        """The key's limits gained a budget period (it starts now) or lost theirs."""
        await self._run("SET_PERIOD", key_id, [_or_none(period_ms)])

    async def add_spend(self, key_id: str, totals: Totals, period_ms: int | None) -> None:
        """Add spend that was settled without Redis (while it was unreachable)."""
        args = [totals.spent, totals.calls, totals.input_tokens, totals.output_tokens]
        await self._run("ADD_SPEND", key_id, [*args, _or_none(period_ms)])

    async def revoke(self, key_id: str) -> None:
        """From now on every reservation on this key is refused, on every instance."""
        async with self._slots:
            await self.client.hset(self.keys(key_id)[0], "revoked", "1")


_SCRIPTS = ("RESERVE", "SETTLE", "RELEASE", "RENEW", "LOAD", "TOTALS", "SET_PERIOD", "ADD_SPEND")


def _or_none(value: int | None) -> int:
    return NONE if value is None else value


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
