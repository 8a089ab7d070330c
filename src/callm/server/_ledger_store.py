"""The gateway's SQLite database: virtual keys (hashes only), spend, usage by day.

Used from one thread (the ledger's executor), never from the event loop. Amounts are exact
decimals kept as text. The schema is an append-only list of migrations, like the call log's.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from .._config.folders import private_folder
from ._ledger import KeyLimits, UsageRow, VirtualKey, limits_to_json

Migration = Callable[[sqlite3.Connection], None]


def m001_gateway(db: sqlite3.Connection) -> None:
    """Keys, the current budget period's spend per key, and usage per day, key and model."""
    db.executescript(
        """
        CREATE TABLE keys (
            id TEXT PRIMARY KEY,
            hash TEXT NOT NULL UNIQUE,          -- HMAC-SHA256 of the key with the server secret
            name TEXT NOT NULL,
            prefix TEXT NOT NULL,               -- the first characters, to recognise a key
            created_at REAL NOT NULL,
            limits TEXT NOT NULL,               -- JSON
            revoked_at REAL
        );
        CREATE TABLE spend (
            key_id TEXT PRIMARY KEY,
            period_start REAL,
            spent TEXT NOT NULL,
            calls INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL
        );
        CREATE TABLE usage (
            day TEXT NOT NULL,
            key_id TEXT NOT NULL,
            model TEXT NOT NULL,
            calls INTEGER NOT NULL,
            errors INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cost TEXT NOT NULL,
            unpriced_calls INTEGER NOT NULL,
            PRIMARY KEY (day, key_id, model)
        );
        """
    )


MIGRATIONS: tuple[Migration, ...] = (m001_gateway,)


@dataclass(frozen=True, slots=True)
class UsageDelta:
    """Usage to add to one (day, key, model) row."""

    day: str
    key_id: str
    model: str
    calls: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost: Decimal
    unpriced: int

    def __add__(self, other: UsageDelta) -> UsageDelta:
        return UsageDelta(
            self.day,
            self.key_id,
            self.model,
            self.calls + other.calls,
            self.errors + other.errors,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cost + other.cost,
            self.unpriced + other.unpriced,
        )


SpendRow = tuple[str, float | None, str, int, int, int]


def _create_private(path: Path) -> None:
    """Make the gateway's folder (0700) and database (0600) when missing, whatever the umask:
    key hashes, spend and usage are nobody else's to read. A file that exists keeps its mode."""
    private_folder(path.parent)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.fchmod(fd, 0o600)  # SQLite gives its -wal and -shm files the same mode
    os.close(fd)


class LedgerStore:
    """The gateway database, opened once (WAL mode) and migrated on open."""

    def __init__(self, path: Path) -> None:
        _create_private(path)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA busy_timeout=10000")
        self.db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY)")
        done = {row[0] for row in self.db.execute("SELECT name FROM _migrations")}
        for migration in MIGRATIONS:
            if migration.__name__ not in done:
                with self.db:
                    self.db.execute("BEGIN")
                    migration(self.db)
                    self.db.execute("INSERT INTO _migrations VALUES (?)", (migration.__name__,))

    def close(self) -> None:
        self.db.close()

    def live_keys(self) -> list[tuple[str, VirtualKey]]:
        rows = self.db.execute(
            "SELECT hash, id, name, prefix, created_at, limits FROM keys "
            "WHERE revoked_at IS NULL ORDER BY created_at"
        )
        return [(row[0], _key(*row[1:])) for row in rows]

    def spend(self) -> dict[str, tuple[float | None, Decimal, int, int, int]]:
        rows = self.db.execute("SELECT * FROM spend")
        return {r[0]: (r[1], Decimal(r[2]), r[3], r[4], r[5]) for r in rows}

    def insert_key(self, key_hash: str, key: VirtualKey) -> None:
        with self.db:
            self.db.execute(
                "INSERT INTO keys VALUES (?, ?, ?, ?, ?, ?, NULL)",
                (key.id, key_hash, key.name, key.prefix, key.created_at, _limits(key)),
            )

    def update_key(self, key: VirtualKey) -> None:
        with self.db:
            self.db.execute(
                "UPDATE keys SET name = ?, limits = ? WHERE id = ?",
                (key.name, _limits(key), key.id),
            )

    def revoke_key(self, key_id: str, when: float) -> None:
        with self.db:
            self.db.execute("UPDATE keys SET revoked_at = ? WHERE id = ?", (when, key_id))

    def write(self, usage: list[UsageDelta], spend: list[SpendRow]) -> None:
        """One transaction: usage added to its rows, each key's spend replaced."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for d in usage:
                found = self.db.execute(
                    "SELECT cost FROM usage WHERE day = ? AND key_id = ? AND model = ?",
                    (d.day, d.key_id, d.model),
                ).fetchone()
                cost = str(d.cost + (Decimal(found[0]) if found else 0))
                self.db.execute(
                    """INSERT INTO usage VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (day, key_id, model) DO UPDATE SET
                        calls = calls + excluded.calls, errors = errors + excluded.errors,
                        input_tokens = input_tokens + excluded.input_tokens,
                        output_tokens = output_tokens + excluded.output_tokens,
                        cost = ?, unpriced_calls = unpriced_calls + excluded.unpriced_calls""",
                    (
                        d.day,
                        d.key_id,
                        d.model,
                        d.calls,
                        d.errors,
                        d.input_tokens,
                        d.output_tokens,
                        cost,
                        d.unpriced,
                        cost,
                    ),
                )
            self.db.executemany("INSERT OR REPLACE INTO spend VALUES (?, ?, ?, ?, ?, ?)", spend)

    def usage(self, since_day: str | None) -> list[UsageRow]:
        rows = self.db.execute(
            "SELECT * FROM usage WHERE day >= ? ORDER BY day, key_id, model", (since_day or "",)
        )
        return [
            UsageRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], Decimal(r[7]), r[8]) for r in rows
        ]


def _limits(key: VirtualKey) -> str:
    return json.dumps(limits_to_json(key.limits))


def _key(key_id: str, name: str, prefix: str, created_at: float, limits: str) -> VirtualKey:
    data = json.loads(limits)
    budget = data.get("budget_usd")
    return VirtualKey(
        key_id,
        name,
        prefix,
        created_at,
        KeyLimits(
            models=tuple(data.get("models") or ("*",)),
            budget_usd=Decimal(budget) if budget is not None else None,
            budget_period=data.get("budget_period"),
            rpm=data.get("rpm"),
            tpm=data.get("tpm"),
            max_parallel=data.get("max_parallel"),
            expires_at=data.get("expires_at"),
            unknown_price=data.get("unknown_price") or "refuse",
        ),
    )
