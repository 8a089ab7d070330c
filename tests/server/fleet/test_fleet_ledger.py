"""Two fleet ledgers in one test share one PostgreSQL and one Redis, as two gateway instances
do: limits hold exactly across both, changes reach the other one, outages are survived as
configured. (The two-process gateway tests drive the same through HTTP.)"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import pytest
from fleet_servers import PostgresServer, RedisServer, start_or_report

from callm import Usage
from callm.server._fleet import FleetConfig, FleetLedger
from callm.server._fleet.ledger import RedisUnavailable
from callm.server._ledger import KeyLimits, Refused, Reservation, VirtualKey

MODEL = "openai/gpt-4o-mini"


@pytest.fixture
async def pair(postgres_url: str, redis_url: str) -> AsyncIterator[tuple[FleetLedger, FleetLedger]]:
    first = FleetLedger(FleetConfig(postgres_url, redis_url))
    second = FleetLedger(FleetConfig(postgres_url, redis_url))
    await first.start()
    await second.start()
    yield first, second
    await first.close()
    await second.close()


async def make(ledger: FleetLedger, **limits: object) -> VirtualKey:
    key = VirtualKey(
        "key_" + str(time.monotonic_ns()), "t", "sk-callm-ab", time.time(), KeyLimits(**limits)
    )  # type: ignore[arg-type]
    await ledger.create_key("hash-" + key.id, key)
    return key


async def try_reserve(ledger: FleetLedger, key: VirtualKey, **kw: object) -> Reservation | None:
    try:
        return await ledger.reserve(key, MODEL, tokens=kw.get("tokens", 1), cost=kw.get("cost"))  # type: ignore[arg-type]
    except Refused:
        return None


async def test_rpm_is_exact_across_two_instances(pair: tuple[FleetLedger, FleetLedger]) -> None:
    first, second = pair
    key = await make(first, rpm=40)
    both = (first, second)
    tickets = await asyncio.gather(*(try_reserve(both[i % 2], key) for i in range(200)))
    admitted = [t for t in tickets if t is not None]
    assert len(admitted) == 40
    for i, ticket in enumerate(admitted):
        await both[i % 2].settle(ticket, Usage(1, 1), None)


async def test_budget_is_never_overshot_across_two_instances(
    pair: tuple[FleetLedger, FleetLedger],
) -> None:
    first, second = pair
    key = await make(first, budget_usd=Decimal("1"))

    async def one(ledger: FleetLedger) -> bool:
        ticket = await try_reserve(ledger, key, cost=Decimal("0.3"))
        if ticket is None:
            return False
        await asyncio.sleep(0.01)
        await ledger.settle(ticket, Usage(1, 1), Decimal("0.29"))
        return True

    admitted = sum(await asyncio.gather(*(one(pair[i % 2]) for i in range(60))))
    assert admitted == 3
    assert (await second.key_usage(key.id)).spent_usd == Decimal("0.87")
    # Both instances' usage reaches the database (the other's within its flush interval).
    await second.queue.flush()
    rows = await first.usage()
    assert [(r.calls, r.cost_usd) for r in rows if r.key_id == key.id] == [(3, Decimal("0.87"))]


async def test_revocation_and_changes_reach_the_other_instance_within_a_second(
    pair: tuple[FleetLedger, FleetLedger],
) -> None:
    first, second = pair
    key = await make(first)
    changed = await make(first)
    assert await second.find_key("hash-" + key.id) == key  # now in the second's cache
    assert await second.find_key("hash-" + changed.id) == changed
    assert await second.find_key("hash-unknown") is None  # a miss is cached too
    await first.revoke_key(key.id)
    await first.update_key(changed.id, KeyLimits(max_parallel=0), "renamed")
    await first.create_key("hash-unknown", await make_key_object())
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        seen = await second.find_key("hash-" + changed.id)
        if (
            await second.find_key("hash-" + key.id) is None
            and seen is not None
            and seen.limits.max_parallel == 0
            and await second.find_key("hash-unknown") is not None
        ):
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the other instance still serves the old keys after a second")
    # A reservation already under way on the revoked key is refused at once, too.
    with pytest.raises(Refused) as caught:
        await second.reserve(key, MODEL, tokens=1, cost=None)
    assert caught.value.status == 401


async def make_key_object() -> VirtualKey:
    return VirtualKey("key_late" + str(time.monotonic_ns()), "late", "sk-callm-cd", time.time())


async def test_a_dead_instances_reservations_expire(postgres_url: str, redis_url: str) -> None:
    config = FleetConfig(postgres_url, redis_url, lease_s=0.6)
    dying, living = FleetLedger(config), FleetLedger(config)
    await dying.start()
    await living.start()
    try:
        key = await make(living, max_parallel=1, budget_usd=Decimal("1"))
        await dying.reserve(key, MODEL, tokens=1, cost=Decimal("1"))
        await asyncio.sleep(0.5)  # still renewed while its instance lives
        assert await try_reserve(living, key, cost=Decimal("0.1")) is None
        for task in dying._tasks:  # the instance dies: nothing renews, nothing settles
            task.cancel()
        await asyncio.sleep(1.0)
        ticket = await try_reserve(living, key, cost=Decimal("1"))
        assert ticket is not None
        assert (await living.key_usage(key.id)).in_flight == 1
    finally:
        await living.close()
        await dying.close()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = start_or_report(RedisServer())
    yield server
    server.stop()


async def redis_outage(
    postgres_url: str, redis: RedisServer, mode: RedisUnavailable
) -> tuple[FleetLedger, VirtualKey]:
    ledger = FleetLedger(FleetConfig(postgres_url, redis.url, redis_unavailable=mode))
    await ledger.start()
    key = await make(ledger, rpm=3, budget_usd=Decimal("1"))
    await ledger.settle(
        await ledger.reserve(key, MODEL, tokens=1, cost=Decimal("0.5")), Usage(1, 1), Decimal("0.5")
    )
    await ledger.queue.flush()
    assert ledger.health()["limits"] == "shared"
    redis.kill()
    return ledger, key


def warnings_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


async def test_redis_down_refuses_when_so_configured(
    postgres_url: str, own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    ledger, key = await redis_outage(postgres_url, own_redis, "refuse")
    try:
        with pytest.raises(Refused) as caught:
            await ledger.reserve(key, MODEL, tokens=1, cost=Decimal("0.1"))
        assert (caught.value.status, caught.value.code) == (503, "limits_unavailable")
        assert warnings_logged(caplog) == [  # said once, not silently and not per call
            "callm serve: Redis is unreachable: calls are refused until it is back"
        ]
        health = ledger.health()
        assert (health["ready"], health["limits"], health["redis"]) == (
            False,
            "refusing",
            "unreachable",
        )
        own_redis.start()  # back, and empty: the key's spend reloads from PostgreSQL
        await wait_for(lambda: ledger.health()["limits"] == "shared")
        assert warnings_logged(caplog)[-1] == (
            "callm serve: Redis is reachable: limits are shared again"
        )
        ticket = await ledger.reserve(key, MODEL, tokens=1, cost=Decimal("0.5"))
        with pytest.raises(Refused) as over:
            await ledger.reserve(key, MODEL, tokens=1, cost=Decimal("0.01"))
        assert over.value.code == "budget_exceeded"
        await ledger.release(ticket)
    finally:
        await ledger.close()


async def test_redis_down_falls_back_to_per_instance_limits_when_so_configured(
    postgres_url: str, own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    ledger, key = await redis_outage(postgres_url, own_redis, "local")
    try:
        ticket = await ledger.reserve(key, MODEL, tokens=1, cost=Decimal("0.2"))
        assert warnings_logged(caplog) == [
            "callm serve: Redis is unreachable: limits now hold per instance"
        ]
        health = ledger.health()
        assert (health["ready"], health["limits"], health["redis"]) == (
            True,
            "per_instance",
            "unreachable",
        )
        # The stored spend still counts: 0.5 spent + 0.2 held leaves 0.3.
        with pytest.raises(Refused) as caught:
            await ledger.reserve(key, MODEL, tokens=1, cost=Decimal("0.31"))
        assert caught.value.code == "budget_exceeded"
        await ledger.settle(ticket, Usage(1, 1), Decimal("0.2"))
        own_redis.start()
        await wait_for(lambda: ledger.health()["limits"] == "shared")
        await ledger.queue.flush()
        assert (await ledger.key_usage(key.id)).spent_usd == Decimal("0.7")
    finally:
        await ledger.close()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    server = start_or_report(PostgresServer())
    yield server
    server.stop()


async def test_usage_waits_out_a_postgres_outage(
    own_postgres: PostgresServer, redis_url: str
) -> None:
    ledger = FleetLedger(FleetConfig(own_postgres.url, redis_url, flush_every=0.05))
    await ledger.start()
    try:
        key = await make(ledger)
        assert await ledger.find_key("hash-" + key.id) == key
        own_postgres.halt()
        for _ in range(5):  # served from the cached key and Redis: no database needed
            ticket = await ledger.reserve(key, MODEL, tokens=1, cost=Decimal("0.01"))
            await ledger.settle(ticket, Usage(2, 3), Decimal("0.01"))
        await wait_for(lambda: ledger.health()["postgres"] == "unreachable")
        assert ledger.health()["usage_queued"] == 2  # one usage row, one spend row
        own_postgres.restart()
        await wait_for(lambda: ledger.health()["usage_queued"] == 0, timeout=15)
        rows = await ledger.usage()
        assert [(r.calls, r.input_tokens, r.cost_usd) for r in rows] == [(5, 10, Decimal("0.05"))]
        assert ledger.health()["postgres"] == "ok"
    finally:
        await ledger.close()


async def wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail("the condition did not hold in time")
        await asyncio.sleep(0.05)


def test_drivers_load_only_with_the_fleet() -> None:
    import subprocess
    import sys

    code = (
        "import sys, callm.server._fleet as f; "
        "print(sorted(m for m in ('asyncpg', 'redis') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # loaded when a ledger starts, not on import
