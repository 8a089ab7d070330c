"""The throwaway servers the fleet tests run against are real, private and loopback-only."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis
from fleet_servers import PostgresServer, RedisServer


async def test_postgres_is_real_and_each_test_gets_an_empty_database(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    assert postgres_url.startswith("postgresql://callm@127.0.0.1:")
    conn = await asyncpg.connect(postgres_url)
    try:
        version = await conn.fetchval("SHOW server_version_num")
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        listen = await conn.fetchval("SHOW listen_addresses")
    finally:
        await conn.close()
    assert int(version) >= 120000
    assert tables == 0
    assert listen == "127.0.0.1"
    assert postgres_server.data.is_dir()


async def test_redis_is_real_and_empty(redis_url: str, redis_server: RedisServer) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.dbsize() == 0
        assert await client.set("k", "v")
        info = await client.info("server")
    finally:
        await client.aclose()
    assert int(info["tcp_port"]) == redis_server.port


def test_import_callm_loads_no_fleet_driver() -> None:
    import subprocess
    import sys

    code = (
        "import sys, callm; print([m for m in ('asyncpg', 'redis', 'hiredis') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
