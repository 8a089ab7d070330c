"""What a fleet asks of PostgreSQL: usage in batches rather than a write per call, key
lookups from a short-lived cache dropped on change, a bounded queue while the database is
away, and a schema that migrates itself once."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import asyncpg
import pytest
from fleet_servers import PostgresServer, start_or_report
from test_fleet_ledger import MODEL, make, wait_for

from callm import Usage
from callm.server._fleet import FleetConfig, FleetLedger
from callm.server._fleet.pg_store import MIGRATIONS, PgStore
from callm.server._ledger import Refused

# A statement-level trigger counts the statements that write usage: real PostgreSQL
# counting what the gateway really sends.
COUNT_WRITES = """
CREATE TABLE public.usage_statements (n BIGINT NOT NULL);
INSERT INTO public.usage_statements VALUES (0);
CREATE FUNCTION public.count_usage_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN UPDATE public.usage_statements SET n = n + 1; RETURN NULL; END $$;
CREATE TRIGGER counted AFTER INSERT ON callm.usage
    FOR EACH STATEMENT EXECUTE FUNCTION public.count_usage_statement();
"""


@pytest.fixture
async def pair(postgres_url: str, redis_url: str) -> AsyncIterator[tuple[FleetLedger, FleetLedger]]:
    config = FleetConfig(postgres_url, redis_url, flush_every=0.25)
    first, second = FleetLedger(config), FleetLedger(config)
    await first.start()
    await second.start()
    yield first, second
    await first.close()
    await second.close()


async def test_usage_is_written_in_batches_not_a_statement_per_call(
    pair: tuple[FleetLedger, FleetLedger], postgres_url: str
) -> None:
    db = await asyncpg.connect(postgres_url)
    try:
        await db.execute(COUNT_WRITES)
        key = await make(pair[0])
        started = time.monotonic()

        async def call(ledger: FleetLedger) -> None:
            ticket = await ledger.reserve(key, MODEL, tokens=10, cost=Decimal("0.001"))
            await ledger.settle(ticket, Usage(3, 4), Decimal("0.001"))

        await asyncio.gather(*(call(pair[i % 2]) for i in range(300)))
        for ledger in pair:
            await ledger.queue.flush()
        elapsed = time.monotonic() - started
        statements = await db.fetchval("SELECT n FROM public.usage_statements")
        row = await db.fetchrow("SELECT calls, input_tokens, cost FROM callm.usage")
    finally:
        await db.close()
    assert (row["calls"], row["input_tokens"], row["cost"]) == (300, 900, Decimal("0.3"))
    # One statement per flush of each instance (every 0.25 s, and the last one), however
    # many calls each carries.
    assert 1 <= statements <= 2 * (elapsed / 0.25 + 2)
    assert statements < 300 / 10


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    server = start_or_report(PostgresServer())
    yield server
    server.stop()


async def test_key_lookups_come_from_the_cache_while_postgres_is_away(
    own_postgres: PostgresServer, redis_url: str
) -> None:
    ledger = FleetLedger(FleetConfig(own_postgres.url, redis_url))
    await ledger.start()
    try:
        key = await make(ledger)
        assert await ledger.find_key("hash-" + key.id) == key  # looked up once, now cached
        own_postgres.halt()
        for _ in range(3):  # served without the database
            assert await ledger.find_key("hash-" + key.id) == key
        # A key the cache has never seen cannot be told apart from a bad one: 503, not 401.
        with pytest.raises(Refused) as caught:
            await ledger.find_key("hash-never-seen")
        assert (caught.value.status, caught.value.code) == (503, "store_unavailable")
    finally:
        own_postgres.restart()
        await ledger.close()


async def test_a_full_usage_queue_refuses_calls_until_postgres_returns(
    own_postgres: PostgresServer, redis_url: str
) -> None:
    config = FleetConfig(own_postgres.url, redis_url, flush_every=0.05, max_queued=3)
    ledger = FleetLedger(config)
    await ledger.start()
    try:
        key = await make(ledger)
        own_postgres.halt()
        for model in ("openai/a", "openai/b"):  # two usage rows and one spend row: 3, full
            ticket = await ledger.reserve(key, model, tokens=1, cost=Decimal("0.01"))
            await ledger.settle(ticket, Usage(1, 1), Decimal("0.01"))
        await wait_for(lambda: ledger.health()["postgres"] == "unreachable")
        health = ledger.health()
        assert (health["ready"], health["usage_queued"]) == (False, 3)
        # Rather than serve calls whose cost could not be kept, the instance refuses them.
        with pytest.raises(Refused) as caught:
            await ledger.reserve(key, MODEL, tokens=1, cost=Decimal("0.01"))
        assert (caught.value.status, caught.value.code) == (503, "store_unavailable")

        own_postgres.restart()
        await wait_for(lambda: ledger.health()["ready"], timeout=15)
        ticket = await ledger.reserve(key, MODEL, tokens=1, cost=Decimal("0.01"))
        await ledger.settle(ticket, Usage(1, 1), Decimal("0.01"))
        rows = await ledger.usage()
        assert sorted((r.model, r.calls) for r in rows) == [
            ("openai/a", 1),
            ("openai/b", 1),
            (MODEL, 1),
        ]
    finally:
        await ledger.close()


async def test_key_lookups_are_cached_for_a_short_ttl_and_dropped_on_change(
    postgres_url: str, redis_url: str
) -> None:
    config = FleetConfig(postgres_url, redis_url, key_ttl=3.0)
    first, second = FleetLedger(config), FleetLedger(config)
    await first.start()
    await second.start()
    db = await asyncpg.connect(postgres_url)
    try:
        await wait_for(lambda: second.cache.listening)  # subscribed: the long TTL holds
        announced, quiet = await make(first), await make(first)
        for key in (announced, quiet):
            assert await second.find_key("hash-" + key.id) == key  # now in its cache
        # A change made through an instance is announced: the other drops its entry at
        # once, long before the TTL would have.
        changed_at = time.monotonic()
        await first.revoke_key(announced.id)
        while await second.find_key("hash-" + announced.id) is not None:
            assert time.monotonic() - changed_at < 1.0, "the change was not heard in a second"
            await asyncio.sleep(0.02)
        # A change nobody announces (made in the database by hand) is not seen while the
        # entry lives — the lookup never reached PostgreSQL — and is seen once it expires.
        await db.execute("UPDATE callm.keys SET revoked_at = 1 WHERE id = $1", quiet.id)
        changed_at = time.monotonic()
        assert await second.find_key("hash-" + quiet.id) == quiet
        while await second.find_key("hash-" + quiet.id) is not None:
            assert time.monotonic() - changed_at < config.key_ttl + 1.0, "the TTL did not end"
            await asyncio.sleep(0.05)
    finally:
        await db.close()
        await first.close()
        await second.close()


async def test_the_schema_migrates_once_however_many_instances_start_together(
    postgres_url: str,
) -> None:
    names = [name for name, _ in MIGRATIONS]
    assert names == sorted(set(names))  # append-only: numbered, unique, in order
    assert all(re.fullmatch(r"m\d{3}_[a-z0-9_]+", name) for name in names)
    stores = [PgStore(postgres_url, max_size=2) for _ in range(4)]
    try:
        await asyncio.gather(*(store.open() for store in stores))  # each one migrates
        db = await asyncpg.connect(postgres_url)
        try:
            recorded = [r["name"] for r in await db.fetch("SELECT name FROM callm.migrations")]
            tables = await db.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'callm'"
            )
        finally:
            await db.close()
        assert sorted(recorded) == names
        assert {"keys", "spend", "usage", "migrations"} <= {t["table_name"] for t in tables}
        assert await stores[0].migrate() == []  # nothing left to apply
    finally:
        for store in stores:
            await store.close()
