"""``callm serve`` processes and their stores: a PostgreSQL outage loses no usage (queued,
shown in /ready and /metrics, written when it returns), and a burst of requests opens no
more connections than the pools allow."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import redis
from fleet_servers import PostgresServer, start_or_report
from gateway_process import GatewayProcess
from test_fleet_gateway import chat, fleet, fleet_env, get, one  # noqa: F401 — fleet: fixture

from callm.testing import FakeOpenAIServer

POOL = 10  # PostgreSQL connections per instance (FleetConfig.pool_size)
REDIS_POOL = 32 + 4  # Redis: the counters' connections, the subscription and health checks


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    server = start_or_report(PostgresServer())
    yield server
    server.stop()


def queued(gateway: GatewayProcess) -> float:
    """``callm_usage_queued`` as /metrics shows it now."""
    with urllib.request.urlopen(gateway.url + "/metrics", timeout=10) as r:
        page = r.read().decode()
    found = re.search(r"^callm_usage_queued (\S+)$", page, re.M)
    assert found, "no callm_usage_queued metric"
    return float(found[1])


def wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_postgres_outage_queues_usage_and_says_so_then_writes_it(
    upstream: FakeOpenAIServer, own_postgres: PostgresServer, redis_url: str, tmp_path: Path
) -> None:
    env = fleet_env(own_postgres.url, redis_url)
    with GatewayProcess(upstream, tmp_path / "gw", env=env) as gateway:
        key = gateway.new_key(rpm=1000)
        assert one(gateway, key)[0] == 200  # the key is now in the gateway's cache
        own_postgres.halt()
        for _ in range(5):  # calls go on: the key is cached, the limits are in Redis
            assert one(gateway, key)[0] == 200
        wait_until(
            lambda: get(gateway.url + "/ready")[1]["stores"]["postgres"] == "unreachable",
            10,
            "/ready never said PostgreSQL was unreachable",
        )
        status, page = get(gateway.url + "/ready")
        assert status == 200 and page["stores"]["usage_queued"] >= 1
        assert queued(gateway) >= 1

        own_postgres.restart()
        wait_until(lambda: queued(gateway) == 0, 20, "the queued usage was never written")
        assert get(gateway.url + "/ready")[1]["stores"]["postgres"] == "ok"
        status, usage = gateway.admin("GET", "/admin/usage")
        assert status == 200
        assert sum(row["calls"] for row in usage["data"]) == 6


def test_a_burst_opens_no_more_connections_than_the_pools_allow(
    fleet: tuple[GatewayProcess, GatewayProcess],  # noqa: F811
    postgres_url: str,
    redis_url: str,
) -> None:
    # Good requests work Redis (a script each); bad keys work PostgreSQL (a lookup each,
    # none of them cached yet): 300 of each at once, over both gateways.
    key = fleet[0].new_key(rpm=100_000)
    bad = [f"sk-callm-{secrets.token_urlsafe(24)}" for _ in range(300)]

    async def burst() -> list[int]:
        connector = aiohttp.TCPConnector(limit=600)
        async with aiohttp.ClientSession(connector=connector) as session:
            calls = [chat(session, fleet[i % 2].url, key) for i in range(300)]
            calls += [chat(session, fleet[i % 2].url, b) for i, b in enumerate(bad)]
            return [status for status, _ in await asyncio.gather(*calls)]

    statuses = asyncio.run(burst())

    assert statuses.count(200) == 300 and statuses.count(401) == 300
    assert postgres_connections(postgres_url) <= 2 * POOL
    with redis.Redis.from_url(redis_url) as client:
        assert len(client.client_list()) - 1 <= 2 * REDIS_POOL  # this client aside


def postgres_connections(url: str) -> int:
    async def count() -> int:
        db = await asyncpg.connect(url)
        try:
            found = await db.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await db.close()
        return int(found)

    return asyncio.run(count())
