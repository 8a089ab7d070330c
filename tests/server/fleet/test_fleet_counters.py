"""The Redis scripts, driven directly against a real Redis and a real one-node Redis Cluster
(which refuses any script whose keys span slots)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import secrets
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import redis.asyncio as aioredis
from fleet_servers import RedisServer, start_or_report
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import TimeoutError as RedisTimeout

from callm.server._fleet.counters import Limits, RedisCounters, Totals, from_units, to_units

USD = 10**9  # nano-dollars


@pytest.fixture(params=["redis", "cluster"])
async def client(
    request: pytest.FixtureRequest, redis_url: str
) -> AsyncIterator[aioredis.Redis | RedisCluster]:
    if request.param == "cluster":
        server: RedisServer = request.getfixturevalue("redis_cluster")
        found: aioredis.Redis | RedisCluster = RedisCluster.from_url(server.url)
    else:
        found = aioredis.Redis.from_url(redis_url)
    yield found
    await found.aclose()


async def counters_for(
    client: aioredis.Redis | RedisCluster, lease_s: float = 30.0
) -> tuple[RedisCounters, str]:
    counters = RedisCounters(client, lease_s=lease_s)
    key_id = "key_" + secrets.token_hex(6)
    assert await counters.load(key_id, Totals())
    return counters, key_id


def rid() -> str:
    return secrets.token_hex(8)


def test_amounts_round_toward_refusing() -> None:
    assert to_units(Decimal("0.3")) == 300_000_000
    assert to_units(Decimal("0.0000000001")) == 1  # a cost rounds up
    assert to_units(Decimal("0.9999999999"), up=False) == 999_999_999  # a budget down
    assert from_units(600_000_000) == Decimal("0.6")


async def test_a_key_is_unloaded_until_its_stored_state_is_given(
    client: aioredis.Redis | RedisCluster,
) -> None:
    counters = RedisCounters(client)
    decision = await counters.reserve("key_new", rid(), tokens=1, cost=0, limits=Limits())
    assert decision.reason == "unloaded"
    assert await counters.totals("key_new", None) is None
    assert await counters.load("key_new", Totals(spent=5, calls=2))
    assert not await counters.load("key_new", Totals(spent=99))  # never overwritten
    totals = await counters.totals("key_new", None)
    assert totals is not None
    assert (totals.spent, totals.calls, totals.period_start_ms) == (5, 2, None)


async def test_rpm_is_exact_under_two_clients_at_once(
    client: aioredis.Redis | RedisCluster, redis_url: str
) -> None:
    counters, key_id = await counters_for(client)
    other = aioredis.Redis.from_url(redis_url) if isinstance(client, aioredis.Redis) else None
    second = RedisCounters(other) if other is not None else counters
    limits = Limits(rpm=40)

    async def one(i: int) -> bool:
        side = counters if i % 2 else second
        decision = await side.reserve(key_id, rid(), tokens=0, cost=0, limits=limits)
        return decision.reason is None

    try:
        admitted = sum(await asyncio.gather(*(one(i) for i in range(200))))
    finally:
        if other is not None:
            await other.aclose()
    assert admitted == 40
    refused = await counters.reserve(key_id, rid(), tokens=0, cost=0, limits=limits)
    assert refused.reason == "rpm"
    assert refused.retry_after is not None
    assert 55 < refused.retry_after <= 60


async def test_the_budget_is_never_overshot(client: aioredis.Redis | RedisCluster) -> None:
    counters, key_id = await counters_for(client)
    limits = Limits(budget=1 * USD)
    cost = to_units(Decimal("0.3"))

    async def one() -> bool:
        ticket = rid()
        decision = await counters.reserve(key_id, ticket, tokens=1, cost=cost, limits=limits)
        if decision.reason is not None:
            assert decision.reason == "budget"
            return False
        await asyncio.sleep(0.01)
        await counters.settle(
            key_id, ticket, tokens=2, cost=cost, input_tokens=1, output_tokens=1, period_ms=None
        )
        return True

    admitted = sum(await asyncio.gather(*(one() for _ in range(50))))
    totals = await counters.totals(key_id, None)
    assert admitted == 3
    assert totals is not None
    assert (totals.spent, totals.reserved, totals.calls, totals.in_flight) == (
        3 * cost,
        0,
        3,
        0,
    )


async def test_parallel_slots_and_release(client: aioredis.Redis | RedisCluster) -> None:
    counters, key_id = await counters_for(client)
    limits = Limits(max_parallel=2, budget=USD)
    first, second = rid(), rid()
    for ticket in (first, second):
        decision = await counters.reserve(key_id, ticket, tokens=5, cost=USD // 4, limits=limits)
        assert decision.reason is None
    assert (await counters.reserve(key_id, rid(), tokens=0, cost=0, limits=limits)).reason == (
        "parallel"
    )
    await counters.release(key_id, first)
    await counters.release(key_id, first)  # twice is harmless
    totals = await counters.totals(key_id, None)
    assert totals is not None
    assert (totals.in_flight, totals.reserved, totals.spent) == (1, USD // 4, 0)
    assert (await counters.reserve(key_id, rid(), tokens=0, cost=0, limits=limits)).reason is None


async def test_tpm_holds_reservations_then_real_usage(
    client: aioredis.Redis | RedisCluster,
) -> None:
    counters, key_id = await counters_for(client)
    limits = Limits(tpm=1000)
    ticket = rid()
    assert (
        await counters.reserve(key_id, ticket, tokens=800, cost=0, limits=limits)
    ).reason is None
    refused = await counters.reserve(key_id, rid(), tokens=300, cost=0, limits=limits)
    assert refused.reason == "tpm"
    assert refused.retry_after is not None
    assert 55 < refused.retry_after <= 60
    never = await counters.reserve(key_id, rid(), tokens=1001, cost=0, limits=limits)
    assert (never.reason, never.retry_after) == ("tpm_never", None)
    await counters.settle(
        key_id, ticket, tokens=150, cost=0, input_tokens=100, output_tokens=50, period_ms=None
    )
    assert (await counters.reserve(key_id, rid(), tokens=800, cost=0, limits=limits)).reason is None


async def test_a_dead_holders_lease_expires_and_gives_everything_back(
    client: aioredis.Redis | RedisCluster,
) -> None:
    counters, key_id = await counters_for(client, lease_s=0.3)
    limits = Limits(max_parallel=1, budget=USD)
    dead = rid()
    assert (await counters.reserve(key_id, dead, tokens=1, cost=USD, limits=limits)).reason is None
    assert (await counters.reserve(key_id, rid(), tokens=1, cost=1, limits=limits)).reason == (
        "parallel"
    )
    await asyncio.sleep(0.4)  # nobody renews it: its holder is gone
    live = rid()
    assert (await counters.reserve(key_id, live, tokens=1, cost=USD, limits=limits)).reason is None
    # The late holder settling after all is not counted twice against the reservations.
    await counters.settle(
        key_id, dead, tokens=1, cost=0, input_tokens=1, output_tokens=0, period_ms=None
    )
    totals = await counters.totals(key_id, None)
    assert totals is not None
    assert (totals.in_flight, totals.reserved) == (1, USD)


async def test_renewed_leases_stay_held(client: aioredis.Redis | RedisCluster) -> None:
    counters, key_id = await counters_for(client, lease_s=0.3)
    limits = Limits(max_parallel=1)
    held = rid()
    assert (await counters.reserve(key_id, held, tokens=0, cost=0, limits=limits)).reason is None
    for _ in range(6):
        await asyncio.sleep(0.1)
        await counters.renew({key_id: [held], "key_other": [rid()]})
    assert (await counters.reserve(key_id, rid(), tokens=0, cost=0, limits=limits)).reason == (
        "parallel"
    )


async def test_revocation_refuses_every_later_reservation(
    client: aioredis.Redis | RedisCluster,
) -> None:
    counters, key_id = await counters_for(client)
    await counters.revoke(key_id)
    decision = await counters.reserve(key_id, rid(), tokens=0, cost=0, limits=Limits())
    assert decision.reason == "revoked"


async def test_a_budget_period_rolls_over(client: aioredis.Redis | RedisCluster) -> None:
    counters, key_id = await counters_for(client)
    limits = Limits(budget=USD, period_ms=500)
    await counters.set_period(key_id, 500)
    ticket = rid()
    assert (
        await counters.reserve(key_id, ticket, tokens=0, cost=USD, limits=limits)
    ).reason is None
    start = await counters.settle(
        key_id, ticket, tokens=0, cost=USD, input_tokens=0, output_tokens=0, period_ms=500
    )
    assert start is not None
    refused = await counters.reserve(key_id, rid(), tokens=0, cost=1, limits=limits)
    assert refused.reason == "budget"
    assert refused.retry_after is not None
    assert refused.retry_after <= 0.5
    assert (refused.spent, refused.reserved) == (USD, 0)
    await asyncio.sleep(0.55)
    assert (await counters.reserve(key_id, rid(), tokens=0, cost=1, limits=limits)).reason is None
    totals = await counters.totals(key_id, 500)
    assert totals is not None
    assert totals.period_start_ms is not None
    assert totals.period_start_ms >= start + 500
    assert totals.spent == 0


async def test_large_amounts_stay_exact(client: aioredis.Redis | RedisCluster) -> None:
    counters, key_id = await counters_for(client)
    budget = to_units(Decimal("5000000"), up=False)  # five million dollars
    limits = Limits(budget=budget)
    cost = to_units(Decimal("4999999.999999999"))
    ticket = rid()
    assert (
        await counters.reserve(key_id, ticket, tokens=0, cost=cost, limits=limits)
    ).reason is None
    await counters.settle(
        key_id, ticket, tokens=0, cost=cost, input_tokens=0, output_tokens=0, period_ms=None
    )
    totals = await counters.totals(key_id, None)
    assert totals is not None
    assert from_units(totals.spent) == Decimal("4999999.999999999")
    assert (await counters.reserve(key_id, rid(), tokens=0, cost=1, limits=limits)).reason is None
    assert (await counters.reserve(key_id, rid(), tokens=0, cost=1, limits=limits)).reason == (
        "budget"
    )


async def test_renewals_cut_short_give_their_connection_back() -> None:
    """A renewal cancelled (its instance closing or dying) or timed out while Redis hangs
    gives its pooled connection back at once. It used to leave it with the pipeline (redis-py
    loads a pipeline's scripts before the part of ``execute`` that always resets it): the
    pool counted it in use until the pipeline was finalised, and the finaliser warned of an
    unclosed client in whatever test was running then."""
    server: RedisServer = start_or_report(RedisServer())
    pool = aioredis.BlockingConnectionPool.from_url(
        server.url, max_connections=2, timeout=1, socket_timeout=0.3
    )
    client = aioredis.Redis.from_pool(pool)
    try:
        counters, key_id = await counters_for(client)
        held = rid()
        assert (
            await counters.reserve(key_id, held, tokens=0, cost=0, limits=Limits())
        ).reason is None
        server.pause()  # Redis hangs: each renewal waits on its first round trip
        for _ in range(3):  # cancelled mid-renewal
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await counters.renew({key_id: [held]})
        for _ in range(3):  # or failed on the socket's own timeout
            with pytest.raises(RedisTimeout):
                await counters.renew({key_id: [held]})
        server.resume()
        await counters.renew({key_id: [held]})  # the two connections are free again
        assert await client.ping()
    finally:
        with contextlib.suppress(Exception):
            server.resume()
        await client.aclose()
        server.stop()
    gc.collect()  # no pipeline caught in a traceback's cycle is left holding a connection
