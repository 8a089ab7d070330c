"""Fixtures: one throwaway PostgreSQL and one Redis per test session, a fresh database and
an empty Redis per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from fleet_servers import PostgresServer, RedisServer, start_or_report

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = start_or_report(PostgresServer())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = start_or_report(RedisServer())
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A new, empty database for this test."""
    return postgres_server.new_database(f"test_{next(_databases)}")


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    import redis

    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url
