"""A fleet's database in PostgreSQL: virtual keys (hashes only), spend, usage by day.

Every instance opens one pool (bounded) and migrates the schema at start; migrations are an
append-only list, applied once, under an advisory lock so that instances starting together
take turns. Amounts are exact ``NUMERIC``. Usage and spend arrive in batches, each one
statement whose rows are sorted by primary key: concurrent batches from many instances lock
rows in the same order, so they wait for each other but never deadlock.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .._ledger import UsageRow, VirtualKey, limits_to_json

if TYPE_CHECKING:
    import asyncpg

    from .._ledger_store import UsageDelta

SCHEMA = "callm"
_LOCK = 0x63616C6C6D  # the advisory lock migrations take ("callm")

MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "m001_gateway",
        """
        CREATE TABLE callm.keys (
            id TEXT PRIMARY KEY,
            hash TEXT NOT NULL UNIQUE,          -- HMAC-SHA256 of the key with the server secret
            name TEXT NOT NULL,
            prefix TEXT NOT NULL,               -- the first characters, to recognise a key
            created_at DOUBLE PRECISION NOT NULL,
            limits JSONB NOT NULL,
            revoked_at DOUBLE PRECISION
        );
        CREATE TABLE callm.spend (              -- each key's current budget period
            key_id TEXT PRIMARY KEY,
            period_start DOUBLE PRECISION,
            spent NUMERIC NOT NULL,
            calls BIGINT NOT NULL,
            input_tokens BIGINT NOT NULL,
            output_tokens BIGINT NOT NULL
        );
        CREATE TABLE callm.usage (
            day DATE NOT NULL,
            key_id TEXT NOT NULL,
            model TEXT NOT NULL,
            calls BIGINT NOT NULL,
            errors BIGINT NOT NULL,
            input_tokens BIGINT NOT NULL,
            output_tokens BIGINT NOT NULL,
            cost NUMERIC NOT NULL,
            unpriced_calls BIGINT NOT NULL,
            PRIMARY KEY (day, key_id, model)
        );
        """,
    ),
)


@dataclass(frozen=True, slots=True)
class SpendDelta:
    """Spend to add to a key's row, counted in the budget period starting at ``period_start``."""

    key_id: str
    period_start: float | None
    spent: Decimal
    calls: int
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class StoredSpend:
    """A key's spend row as stored."""

    period_start: float | None
    spent: Decimal
    calls: int
    input_tokens: int
    output_tokens: int


_KEY_COLUMNS = "id, name, prefix, created_at, limits"


class PgStore:
    """The fleet database behind one bounded asyncpg pool."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self.min_size, self.max_size = min_size, max_size
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the PostgreSQL store is not open")
        return self._pool

    async def open(self) -> None:
        import asyncpg

        self._pool = await asyncpg.create_pool(
            self.url,
            min_size=self.min_size,
            max_size=self.max_size,
            command_timeout=10,
            # The driver caches prepared statements per connection; that is enough.
            max_inactive_connection_lifetime=300,
        )
        await self.migrate()

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def migrate(self) -> list[str]:
        """Apply the migrations this database lacks, in order; the names applied."""
        applied: list[str] = []
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {SCHEMA}.migrations "
                "(name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            done = {r[0] for r in await conn.fetch(f"SELECT name FROM {SCHEMA}.migrations")}
            for name, sql in MIGRATIONS:
                if name not in done:
                    await conn.execute(sql)
                    await conn.execute(f"INSERT INTO {SCHEMA}.migrations (name) VALUES ($1)", name)
                    applied.append(name)
        return applied

    # --- keys ------------------------------------------------------------------------

    async def find_key(self, key_hash: str) -> VirtualKey | None:
        row = await self.pool.fetchrow(
            f"SELECT {_KEY_COLUMNS} FROM {SCHEMA}.keys WHERE hash = $1 AND revoked_at IS NULL",
            key_hash,
        )
        return None if row is None else _key(row)

    async def get_key(self, key_id: str) -> VirtualKey | None:
        row = await self.pool.fetchrow(
            f"SELECT {_KEY_COLUMNS} FROM {SCHEMA}.keys WHERE id = $1 AND revoked_at IS NULL",
            key_id,
        )
        return None if row is None else _key(row)

    async def key_hash(self, key_id: str) -> str | None:
        found = await self.pool.fetchval(f"SELECT hash FROM {SCHEMA}.keys WHERE id = $1", key_id)
        return None if found is None else str(found)

    async def live_keys(self) -> list[VirtualKey]:
        rows = await self.pool.fetch(
            f"SELECT {_KEY_COLUMNS} FROM {SCHEMA}.keys WHERE revoked_at IS NULL ORDER BY created_at"
        )
        return [_key(row) for row in rows]

    async def insert_key(self, key_hash: str, key: VirtualKey) -> None:
        await self.pool.execute(
            f"INSERT INTO {SCHEMA}.keys VALUES ($1, $2, $3, $4, $5, $6, NULL)",
            key.id,
            key_hash,
            key.name,
            key.prefix,
            key.created_at,
            _limits(key),
        )

    async def update_key(self, key: VirtualKey) -> bool:
        done = await self.pool.execute(
            f"UPDATE {SCHEMA}.keys SET name = $2, limits = $3 WHERE id = $1 AND revoked_at IS NULL",
            key.id,
            key.name,
            _limits(key),
        )
        return str(done).endswith(" 1")

    async def revoke_key(self, key_id: str, when: float) -> str | None:
        """Revoke a live key; its hash (None: no such live key)."""
        found = await self.pool.fetchval(
            f"UPDATE {SCHEMA}.keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL "
            "RETURNING hash",
            key_id,
            when,
        )
        return None if found is None else str(found)

    # --- spend and usage -------------------------------------------------------------

    async def spend(self, key_id: str) -> StoredSpend | None:
        row = await self.pool.fetchrow(
            f"SELECT period_start, spent, calls, input_tokens, output_tokens FROM {SCHEMA}.spend "
            "WHERE key_id = $1",
            key_id,
        )
        return None if row is None else StoredSpend(*row)

    async def write(self, usage: Sequence[UsageDelta], spend: Sequence[SpendDelta]) -> None:
        """One transaction: usage added to its rows, spend added to (or starting) its period."""
        usage = sorted(usage, key=lambda d: (d.day, d.key_id, d.model))
        spend = sorted(spend, key=lambda d: d.key_id)
        async with self.pool.acquire() as conn, conn.transaction():
            if usage:
                await conn.execute(_ADD_USAGE, *_columns(usage, _USAGE_FIELDS))
            if spend:
                await conn.execute(_ADD_SPEND, *_columns(spend, _SPEND_FIELDS))

    async def usage(self, since_day: str | None = None) -> list[UsageRow]:
        since = date.fromisoformat(since_day) if since_day else date.min
        rows = await self.pool.fetch(
            f"SELECT * FROM {SCHEMA}.usage WHERE day >= $1 ORDER BY day, key_id, model", since
        )
        return [UsageRow(r[0].isoformat(), *r[1:]) for r in rows]


_USAGE_FIELDS = (
    "day",
    "key_id",
    "model",
    "calls",
    "errors",
    "input_tokens",
    "output_tokens",
    "cost",
    "unpriced",
)
_ADD_USAGE = f"""
INSERT INTO {SCHEMA}.usage AS u
SELECT d::date, k, m, c, e, i, o, cost, up FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::int8[],
    $8::numeric[], $9::int8[]) AS t(d, k, m, c, e, i, o, cost, up)
ON CONFLICT (day, key_id, model) DO UPDATE SET
    calls = u.calls + excluded.calls,
    errors = u.errors + excluded.errors,
    input_tokens = u.input_tokens + excluded.input_tokens,
    output_tokens = u.output_tokens + excluded.output_tokens,
    cost = u.cost + excluded.cost,
    unpriced_calls = u.unpriced_calls + excluded.unpriced_calls
"""
_SPEND_FIELDS = ("key_id", "period_start", "spent", "calls", "input_tokens", "output_tokens")
# A delta of a later period starts the row afresh; one of an earlier period no longer
# counts; otherwise (same period, or a key that gained or lost its period) it adds up.
_NEWER = "(s.period_start < excluded.period_start)"
_OLDER = "(s.period_start > excluded.period_start)"
_ADD_SPEND = f"""
INSERT INTO {SCHEMA}.spend AS s
SELECT * FROM unnest($1::text[], $2::float8[], $3::numeric[], $4::int8[], $5::int8[],
    $6::int8[])
ON CONFLICT (key_id) DO UPDATE SET
    period_start = CASE WHEN {_OLDER} THEN s.period_start ELSE excluded.period_start END,
    {
    ", ".join(
        f"{c} = CASE WHEN {_NEWER} THEN excluded.{c} WHEN {_OLDER} THEN s.{c} "
        f"ELSE s.{c} + excluded.{c} END"
        for c in ("spent", "calls", "input_tokens", "output_tokens")
    )
}
"""


def _columns(rows: Sequence[Any], names: Sequence[str]) -> list[list[Any]]:
    return [[getattr(row, name) for row in rows] for name in names]


def _limits(key: VirtualKey) -> str:
    return json.dumps(limits_to_json(key.limits))


def _key(row: Any) -> VirtualKey:
    """A key row as a VirtualKey (limits read as the SQLite store reads them)."""
    from .._ledger_store import _key as key_from_columns

    return key_from_columns(row["id"], row["name"], row["prefix"], row["created_at"], row["limits"])
