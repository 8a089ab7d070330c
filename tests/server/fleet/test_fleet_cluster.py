"""Two fleet ledgers on a Redis Cluster (one node that still refuses any command or script
whose keys span hash slots): each key's counters share one hash tag, so limits hold exactly
and changes reach the other instance as they do on a single Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from fleet_servers import RedisServer
from test_fleet_ledger import make, try_reserve, wait_for

from callm import Usage
from callm.server._fleet import FleetConfig, FleetLedger
from callm.server._ledger import KeyLimits


@pytest.fixture
async def pair(
    postgres_url: str, redis_cluster: RedisServer
) -> AsyncIterator[tuple[FleetLedger, FleetLedger]]:
    async with aioredis.Redis.from_url(redis_cluster.url) as client:
        await client.flushall()
    # A pool far smaller than the burst: a cluster client raises when it runs out.
    config = FleetConfig(postgres_url, redis_cluster.url, redis_connections=4)
    first, second = FleetLedger(config), FleetLedger(config)
    await first.start()
    await second.start()
    # Each instance's key-change subscription holds one of its node's connections.
    await wait_for(lambda: first.cache.listening and second.cache.listening)
    yield first, second
    await first.close()
    await second.close()


async def test_limits_are_exact_across_two_instances_on_a_cluster(
    pair: tuple[FleetLedger, FleetLedger],
) -> None:
    first, second = pair
    assert first.health()["limits"] == "shared"
    key = await make(first, rpm=40, max_parallel=100)
    tickets = await asyncio.gather(*(try_reserve(pair[i % 2], key) for i in range(200)))
    admitted = [(i, t) for i, t in enumerate(tickets) if t is not None]
    assert len(admitted) == 40
    assert (await second.key_usage(key.id)).in_flight == 40
    for i, ticket in admitted:
        await pair[i % 2].settle(ticket, Usage(1, 1), None)
    assert (await first.key_usage(key.id)).in_flight == 0


async def test_every_key_of_one_virtual_key_shares_a_hash_slot(
    pair: tuple[FleetLedger, FleetLedger], redis_cluster: RedisServer
) -> None:
    key = await make(pair[0], rpm=10, tpm=1000, max_parallel=2)
    await try_reserve(pair[1], key)
    async with aioredis.Redis.from_url(redis_cluster.url) as client:
        names = [name.decode() async for name in client.scan_iter(f"*{key.id}*")]
        slots = {await client.cluster("KEYSLOT", name) for name in names}
    assert names and all(f"{{{key.id}}}" in name for name in names), names
    assert len(slots) == 1


async def test_a_change_reaches_the_other_instance_within_a_second_on_a_cluster(
    pair: tuple[FleetLedger, FleetLedger],
) -> None:
    first, second = pair
    key = await make(first)
    assert await second.find_key("hash-" + key.id) == key
    # Told over the cluster's pub/sub (listening, see the fixture), not left to the
    # cache's lifetime running out.
    await first.update_key(key.id, KeyLimits(max_parallel=0), "changed")
    deadline = time.monotonic() + 1.0
    while (found := await second.find_key("hash-" + key.id)) is None or found.name != "changed":
        assert time.monotonic() < deadline, "the other instance still has the old key"
        await asyncio.sleep(0.02)
