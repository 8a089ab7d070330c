"""The throwaway servers the fleet tests run against are real, private and loopback-only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from fleet_servers import PostgresServer, RedisServer

SUPPORT = Path(__file__).parents[1]  # where fleet_servers.py lives


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
    code = (
        "import sys, callm; print([m for m in ('asyncpg', 'redis', 'hiredis') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("ci", "outcome"),
    [({"CI": "true"}, "1 error"), ({"CALLM_REQUIRE_SERVERS": "1"}, "1 error"), ({}, "1 skipped")],
)
def test_a_missing_server_fails_in_ci_and_skips_with_its_reason_elsewhere(
    tmp_path: Path, ci: dict[str, str], outcome: str
) -> None:
    """A test session on a machine without redis-server (an empty PATH; its binary is only
    looked for there): never a silent pass or skip in CI."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "conftest.py").write_text("from fleet_servers import redis_server  # noqa: F401\n")
    (tmp_path / "test_needs_redis.py").write_text("def test_it(redis_server):\n    pass\n")
    env = {"PATH": str(tmp_path / "bin"), "PYTHONPATH": str(SUPPORT), **ci}
    command = [sys.executable, "-m", "pytest", "-q", "-rsE", "-p", "no:cacheprovider", "."]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    output = done.stdout + done.stderr
    assert outcome in output, output
    assert done.returncode == (1 if ci else 0), output
    reason = "redis-server is not installed; install it: apt-get install postgresql redis-server"
    assert reason in output, output
