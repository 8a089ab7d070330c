"""The fleet ledger: keys, usage and spend in PostgreSQL, live counters in Redis.

Any number of gateway instances share one PostgreSQL and one Redis and hold every key's
limits exactly between them: each admission decision is one Redis script run (see
``counters.py``), each reservation a lease that its instance renews while the call runs
and that expires if the instance dies. Usage and spend reach PostgreSQL in batches
(``usage_queue.py``); key lookups are cached briefly and dropped on change
(``key_cache.py``).

When Redis is unreachable, ``redis_unavailable`` decides: ``"refuse"`` (the default) turns
calls away with 503 until it is back; ``"local"`` keeps serving with each instance holding
the limits by itself. Either way ``health()`` says so, for ``/ready`` and the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from ..._core.types import Usage
from .._ledger import KeyLimits, KeyUsage, Refused, Reservation, UsageRow, VirtualKey
from .._ledger_store import UsageDelta
from .counters import Decision, Limits, RedisCounters, Totals, from_units, to_units
from .key_cache import ChangeChannel, KeyCache
from .local_counters import LocalCounters
from .pg_store import PgStore, SpendDelta
from .refusals import refusal
from .usage_queue import UsageQueue

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    Counters = RedisCounters | LocalCounters

logger = logging.getLogger("callm.server")
RedisUnavailable = Literal["refuse", "local"]
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """Where a fleet keeps its state, and how an instance behaves when part of it is down."""

    database_url: str = field(repr=False)  # URLs may hold passwords
    redis_url: str | None = field(default=None, repr=False)
    redis_unavailable: RedisUnavailable = "refuse"
    lease_s: float = 30.0  # a dead instance's reservations come back after this
    key_ttl: float = 10.0  # key lookups cached (1 s while key changes cannot be heard)
    pool_size: int = 10  # PostgreSQL connections per instance
    redis_connections: int = 32  # Redis connections per instance
    flush_every: float = 0.25  # seconds between usage batches
    max_queued: int = 100_000  # usage rows held while PostgreSQL is down


@dataclass(slots=True)
class _Ticket:
    rid: str
    local: bool  # held by this instance's own counters, not Redis
    period_ms: int | None  # the key's budget period when the call was admitted


class FleetLedger:
    """:class:`~callm.server._ledger.Ledger` shared by every instance of a fleet."""

    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        self.store = PgStore(config.database_url, max_size=config.pool_size)
        self.queue = UsageQueue(self.store.write, max_rows=config.max_queued)
        self.cache = KeyCache(self.store.find_key, ttl=config.key_ttl)
        self.local = LocalCounters()
        self.redis: Redis | RedisCluster | None = None
        self.counters: RedisCounters | None = None
        self.changes: ChangeChannel | None = None
        self.redis_up = False
        self._held: dict[str, set[str]] = defaultdict(set)  # key id -> leases to renew
        self._unsynced: dict[str, Totals] = {}  # spend settled without Redis, to add to it
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.open()
        if self.config.redis_url is not None:
            self.redis = await _connect(self.config.redis_url, self.config.redis_connections)
            self.counters = RedisCounters(
                self.redis,
                lease_s=self.config.lease_s,
                max_connections=self.config.redis_connections,
            )
            self.changes = ChangeChannel(self.redis, self.cache)
            self.changes.start()
            await self._check_redis()
            self._spawn(self._watch_redis())
            self._spawn(self._renew_forever())
        self._spawn(self.queue.flush_forever(self.config.flush_every))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(work))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.changes is not None:
            await self.changes.close()
        with contextlib.suppress(Exception):
            await self.queue.flush()
        if self.redis is not None:
            await self.redis.aclose()
        await self.store.close()

    def health(self) -> dict[str, Any]:
        """What ``/ready`` reports; ``ready`` is False while calls are being refused."""
        if self.counters is None:
            limits = "per_instance"
        elif self.redis_up:
            limits = "shared"
        else:
            limits = "per_instance" if self.config.redis_unavailable == "local" else "refusing"
        return {
            "ready": limits != "refusing" and not self.queue.full,
            "limits": limits,
            "redis": "none"
            if self.counters is None
            else ("ok" if self.redis_up else "unreachable"),
            "postgres": "ok" if self.queue.failures == 0 else "unreachable",
            "usage_queued": self.queue.queued,
        }

    # --- Redis health ----------------------------------------------------------------

    async def _check_redis(self) -> None:
        assert self.redis is not None
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that lands as the ping answers, and the watcher then outlived close() (which
            # waits for it): a test run hung for 20 minutes in a ledger's teardown.
            async with asyncio.timeout(2.0):
                await self.redis.ping()
        except Exception:
            self._redis_lost()
            return
        if not self.redis_up:
            await self._sync_unsynced()
            self.local.forget()  # Redis holds the truth again
            self.redis_up = True
            if self._tasks:  # not at start: it is back
                logger.warning("callm serve: Redis is reachable: limits are shared again")

    def _redis_lost(self) -> None:
        if self.redis_up or not self._tasks:  # say it once: when it goes, or at start
            logger.warning(
                "callm serve: Redis is unreachable: %s",
                "limits now hold per instance"
                if self.config.redis_unavailable == "local"
                else "calls are refused until it is back",
            )
        self.redis_up = False

    async def _watch_redis(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self._check_redis()
            if self.redis_up and self._unsynced:  # settled locally since, or lost in transit
                with contextlib.suppress(Exception):
                    await self._sync_unsynced()

    async def _sync_unsynced(self) -> None:
        """Add to Redis the spend settled while it was unreachable."""
        assert self.counters is not None
        for key_id in list(self._unsynced):
            key = await self.store.get_key(key_id)
            totals = self._unsynced.pop(key_id)
            if key is not None:
                try:
                    await self.counters.add_spend(key_id, totals, _period_ms(key.limits))
                except BaseException:
                    self._unsync(key_id, totals)
                    raise

    async def _renew_forever(self) -> None:
        assert self.counters is not None
        while True:
            await asyncio.sleep(self.config.lease_s / 3)
            held = {k: list(v) for k, v in self._held.items() if v}
            if held and self.redis_up:
                try:
                    await self.counters.renew(held)
                except Exception:
                    self._redis_lost()

    # --- keys ------------------------------------------------------------------------

    async def find_key(self, key_hash: str) -> VirtualKey | None:
        try:
            key = await self.cache.get(key_hash)
        except Exception as exc:
            raise _store_down() from exc
        if key is None or key.expired(time.time()):
            return None
        return key

    async def create_key(self, key_hash: str, key: VirtualKey) -> None:
        await self.store.insert_key(key_hash, key)
        with contextlib.suppress(Refused):  # else it is loaded on first use
            await self._load(self._counters_now(), key)
        if self.changes is not None:  # an instance may have cached "no such key"
            await self.changes.publish(key_hash)
        self.cache.drop(key_hash)

    async def list_keys(self) -> list[VirtualKey]:
        return await self.store.live_keys()

    async def get_key(self, key_id: str) -> VirtualKey | None:
        return await self.store.get_key(key_id)

    async def update_key(self, key_id: str, limits: KeyLimits, name: str) -> VirtualKey | None:
        key = await self.store.get_key(key_id)
        if key is None:
            return None
        changed = replace(key, limits=limits, name=name)
        if not await self.store.update_key(changed):
            return None
        if (limits.period_s is None) != (key.limits.period_s is None):
            counters = self._counters_now()
            with contextlib.suppress(Exception):
                await counters.set_period(key_id, _period_ms(limits))
        await self._changed(key_id)
        return changed

    async def revoke_key(self, key_id: str) -> bool:
        key_hash = await self.store.revoke_key(key_id, time.time())
        if key_hash is None:
            return False
        await self.local.revoke(key_id)
        if self.counters is not None:
            try:  # every instance refuses it from its next reservation on
                await self.counters.revoke(key_id)
            except Exception:
                self._redis_lost()
        await self._changed(key_id, key_hash)
        return True

    async def _changed(self, key_id: str, key_hash: str | None = None) -> None:
        key_hash = key_hash or await self.store.key_hash(key_id)
        if key_hash is None:
            return
        self.cache.drop(key_hash)
        if self.changes is not None:
            await self.changes.publish(key_hash)

    async def key_usage(self, key_id: str) -> KeyUsage:
        key = await self.store.get_key(key_id)
        if key is None:
            return KeyUsage(_ZERO, None, 0, 0, 0, 0)
        totals = await self._totals(key)
        start = None if totals.period_start_ms is None else totals.period_start_ms / 1000
        return KeyUsage(
            from_units(totals.spent),
            start,
            totals.in_flight,
            totals.calls,
            totals.input_tokens,
            totals.output_tokens,
        )

    async def _totals(self, key: VirtualKey) -> Totals:
        period = _period_ms(key.limits)
        for _ in range(3):
            counters = self._counters_now()
            try:
                found = await counters.totals(key.id, period)
            except Exception as exc:
                await self._redis_failed(counters, exc)
                continue
            if found is not None:
                return found
            await self._load(counters, key)
        raise _limits_down()

    async def usage(self, since_day: str | None = None) -> list[UsageRow]:
        with contextlib.suppress(Exception):
            await self.queue.flush()
        return await self.store.usage(since_day)

    # --- admission -------------------------------------------------------------------

    def _counters_now(self) -> Counters:
        """Redis while it answers; else this instance's own counters, or a refusal."""
        if self.counters is None:
            return self.local
        if self.redis_up:
            return self.counters
        if self.config.redis_unavailable == "local":
            return self.local
        raise _limits_down()

    async def _redis_failed(self, counters: Counters, exc: Exception) -> None:
        """A Redis call failed: Redis is down if it does not answer a ping either (a slow
        reply is not an outage; the caller may retry, every script being safe to repeat
        but for the spend a settlement adds, which then counts twice: never too little)."""
        if counters is self.local:
            raise exc
        logger.debug("callm serve: Redis call failed", exc_info=exc)
        await self._check_redis()

    async def _load(self, counters: Counters, key: VirtualKey) -> None:
        """Give the counters the key's stored spend (a new key, or a fresh Redis)."""
        try:
            stored = await self.store.spend(key.id)
        except Exception as exc:
            raise _store_down() from exc
        if stored is None:
            start = key.created_at if key.limits.period_s is not None else None
            totals = Totals(None if start is None else round(start * 1000))
        else:
            start_ms = None if stored.period_start is None else round(stored.period_start * 1000)
            totals = Totals(
                start_ms,
                to_units(stored.spent),
                0,
                stored.calls,
                stored.input_tokens,
                stored.output_tokens,
            )
        try:
            await counters.load(key.id, totals)
        except Exception as exc:
            await self._redis_failed(counters, exc)

    async def reserve(
        self, key: VirtualKey, model: str, *, tokens: int, cost: Decimal | None
    ) -> Reservation:
        if self.queue.full:
            raise _store_down()
        held = _cost_to_hold(key.limits, cost)
        ticket = _Ticket(secrets.token_hex(8), False, _period_ms(key.limits))
        decision = await self._decide(key, ticket, tokens, to_units(held))
        if decision.reason is not None:
            raise refusal(decision, key.limits, held, tokens)
        if not ticket.local:
            self._held[key.id].add(ticket.rid)
        return Reservation(key.id, model, tokens, held, time.monotonic(), handle=ticket)

    async def _decide(self, key: VirtualKey, ticket: _Ticket, tokens: int, cost: int) -> Decision:
        """The counters' decision (loading the key into them first if they lack it)."""
        limits = _limits(key.limits)
        for _ in range(3):
            counters = self._counters_now()
            ticket.local = counters is self.local
            try:
                decision = await counters.reserve(
                    key.id, ticket.rid, tokens=tokens, cost=cost, limits=limits
                )
            except Exception as exc:
                await self._redis_failed(counters, exc)
                continue
            if decision.reason != "unloaded":
                return decision
            await self._load(counters, key)
        raise _limits_down()

    async def settle(
        self, reservation: Reservation, usage: Usage, cost: Decimal | None, *, ok: bool = True
    ) -> None:
        if reservation.done:
            return
        reservation.done = True
        ticket: _Ticket = reservation.handle
        key_id, spent = reservation.key_id, cost or _ZERO
        self._unhold(key_id, ticket)
        start = await self._settle_counters(reservation, ticket, usage, spent)
        self.queue.add(
            _delta(reservation, usage, cost, ok),
            SpendDelta(
                key_id,
                None if start is None else start / 1000,
                spent,
                1,
                usage.input_tokens,
                usage.output_tokens,
            ),
        )

    async def _settle_counters(
        self, reservation: Reservation, ticket: _Ticket, usage: Usage, spent: Decimal
    ) -> int | None:
        """Settle with whichever counters hold the ticket; the budget period it counted in."""
        counters: Counters = self.local if ticket.local or self.counters is None else self.counters
        units = to_units(spent)
        try:
            start = await counters.settle(
                reservation.key_id,
                ticket.rid,
                tokens=usage.total_tokens,
                cost=units,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                period_ms=ticket.period_ms,
            )
        except LookupError:  # the counters lost the key: the stored spend reloads it
            return None
        except Exception as exc:
            await self._redis_failed(counters, exc)
            start = None
            counters = self.local
        if counters is self.local and self.counters is not None:
            used = Totals(None, units, 0, 1, usage.input_tokens, usage.output_tokens)
            self._unsync(reservation.key_id, used)
        return start

    def _unsync(self, key_id: str, totals: Totals) -> None:
        """Spend Redis has not counted yet (added to it once it answers)."""
        found = self._unsynced.get(key_id, Totals())
        self._unsynced[key_id] = Totals(
            None,
            found.spent + totals.spent,
            0,
            found.calls + totals.calls,
            found.input_tokens + totals.input_tokens,
            found.output_tokens + totals.output_tokens,
        )

    async def release(self, reservation: Reservation) -> None:
        if reservation.done:
            return
        reservation.done = True
        ticket: _Ticket = reservation.handle
        self._unhold(reservation.key_id, ticket)
        counters: Counters = self.local if ticket.local or self.counters is None else self.counters
        try:
            await counters.release(reservation.key_id, ticket.rid)
        except Exception as exc:  # its lease runs out by itself
            with contextlib.suppress(Exception):
                await self._redis_failed(counters, exc)
        self.queue.add(_delta(reservation, Usage(), _ZERO, False), None)

    def _unhold(self, key_id: str, ticket: _Ticket) -> None:
        held = self._held.get(key_id)
        if held is not None:
            held.discard(ticket.rid)
            if not held:
                del self._held[key_id]


async def _connect(url: str, connections: int) -> Redis | RedisCluster:
    """A bounded client for ``url``: a Redis Cluster client when the server is in one."""
    from redis.asyncio import BlockingConnectionPool, Redis
    from redis.asyncio.cluster import RedisCluster

    options: dict[str, Any] = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}
    # The counters use at most ``connections`` at once; a few more for the key-change
    # subscription, its announcements and the health check.
    most = connections + 4
    pool = BlockingConnectionPool.from_url(url, max_connections=most, timeout=5, **options)
    client = Redis.from_pool(pool)  # closing the client closes its pool
    try:
        info = await client.info("cluster")
    except Exception:  # unreachable now: a plain client, which works once it is back
        return client
    if not info.get("cluster_enabled"):
        return client
    await client.aclose()
    # The same room per node: a cluster client raises instead of waiting when its pool is
    # out, and its subscription borrows a connection of the node's pool — with no room
    # left, a burst made the health check fail and the instance think Redis was down.
    return RedisCluster.from_url(url, max_connections=most, **options)


def _limits(limits: KeyLimits) -> Limits:
    budget = limits.budget_usd
    return Limits(
        rpm=limits.rpm,
        tpm=limits.tpm,
        max_parallel=limits.max_parallel,
        budget=None if budget is None else to_units(budget, up=False),
        period_ms=_period_ms(limits),
    )


def _period_ms(limits: KeyLimits) -> int | None:
    period = limits.period_s
    return None if period is None else round(period * 1000)


def _cost_to_hold(limits: KeyLimits, cost: Decimal | None) -> Decimal:
    """The cost a call holds: what it may cost, or Refused when its price is unknown."""
    if cost is not None:
        return cost
    if limits.budget_usd is not None and limits.unknown_price == "refuse":
        raise Refused(
            "the price of this model is unknown and this key has a budget: use a "
            "model with a known price, or set the key's unknown_price to tokens_only",
            code="price_unknown",
            status=403,
        )
    return _ZERO


def _delta(reservation: Reservation, usage: Usage, cost: Decimal | None, ok: bool) -> UsageDelta:
    return UsageDelta(
        time.strftime("%Y-%m-%d", time.gmtime()),
        reservation.key_id,
        reservation.model,
        calls=1,
        errors=0 if ok else 1,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost=cost or _ZERO,
        unpriced=1 if cost is None else 0,
    )


def _limits_down() -> Refused:
    return Refused(
        "the gateway cannot reach the store that holds its limits (Redis); retry shortly",
        code="limits_unavailable",
        status=503,
        retry_after=1.0,
    )


def _store_down() -> Refused:
    return Refused(
        "the gateway cannot reach its database (PostgreSQL); retry shortly",
        code="store_unavailable",
        status=503,
        retry_after=1.0,
    )
