"""The database schema, as an append-only list of named migrations.

Each migration is a function that takes the connection and changes the schema once. They run
in order, each recorded by name in the ``_migrations`` table, so a database of any age is
brought up to date on open and keeps its rows. To change the schema, **append** a new
function to :data:`MIGRATIONS` — never edit or reorder one that has shipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from ._errors import newer_schema

Migration = Callable[[sqlite3.Connection], None]


def m001_calls(db: sqlite3.Connection) -> None:
    """The call log: one row per model call."""
    db.execute(
        """
        CREATE TABLE calls (
            id TEXT PRIMARY KEY,
            time TEXT NOT NULL,                 -- UTC ISO 8601, microseconds
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            request TEXT NOT NULL,              -- JSON: messages, parameters, tools
            response TEXT,
            tool_calls TEXT NOT NULL DEFAULT '[]',
            finish_reason TEXT,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cached_input_tokens INTEGER NOT NULL DEFAULT 0,
            cache_write_tokens INTEGER NOT NULL DEFAULT 0,
            reasoning_tokens INTEGER NOT NULL DEFAULT 0,
            cost TEXT,                          -- exact Decimal USD as text; NULL = unknown
            latency_s REAL,
            ttft_s REAL,
            status TEXT NOT NULL,               -- "ok" or the error class name
            error TEXT,
            request_id TEXT,
            conversation_id TEXT,
            tags TEXT NOT NULL DEFAULT '{}',
            streamed INTEGER NOT NULL DEFAULT 0,
            cached INTEGER NOT NULL DEFAULT 0
        )
        """
    )


def m002_spend(db: sqlite3.Connection) -> None:
    """Money spent per scope (a key, a user, a project …), for budgets."""
    db.execute(
        """
        CREATE TABLE spend (
            scope TEXT NOT NULL,
            amount TEXT NOT NULL,               -- exact Decimal USD as text
            time TEXT NOT NULL
        )
        """
    )


def m003_cache(db: sqlite3.Connection) -> None:
    """The response cache: opaque values with an expiry."""
    db.execute(
        """
        CREATE TABLE cache (
            key TEXT PRIMARY KEY,
            value BLOB NOT NULL,
            expires_at REAL                     -- Unix time; NULL = never
        )
        """
    )


def m004_indexes(db: sqlite3.Connection) -> None:
    """Indexes for the queries the CLI and the budget make."""
    db.execute("CREATE INDEX calls_time ON calls (time)")
    db.execute("CREATE INDEX calls_model ON calls (model, time)")
    db.execute("CREATE INDEX calls_conversation ON calls (conversation_id)")
    db.execute("CREATE INDEX spend_scope_time ON spend (scope, time)")
    db.execute("CREATE INDEX cache_expires ON cache (expires_at)")


def m005_conversations(db: sqlite3.Connection) -> None:
    """Conversations (``Client.conversation``): one row each, and their messages in order."""
    db.execute(
        """
        CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            created TEXT NOT NULL,              -- UTC ISO 8601
            updated TEXT NOT NULL,
            model TEXT,                         -- as given; NULL = the default model
            system TEXT,
            options TEXT NOT NULL DEFAULT '{}', -- JSON: strategy, window, call defaults
            summary TEXT,                       -- the summary of the oldest messages …
            summary_covers INTEGER NOT NULL DEFAULT 0,  -- … of this many of them
            usage TEXT NOT NULL DEFAULT '{}',   -- JSON: summed token counts
            cost TEXT                           -- exact Decimal USD as text; NULL = unknown
        )
        """
    )
    db.execute(
        """
        CREATE TABLE conversation_messages (
            conversation_id TEXT NOT NULL,
            position INTEGER NOT NULL,          -- 0, 1, 2 … in the history
            time TEXT NOT NULL,
            message TEXT NOT NULL,              -- JSON (callm._store.message_json), keys masked
            PRIMARY KEY (conversation_id, position)
        )
        """
    )
    db.execute("CREATE INDEX conversations_updated ON conversations (updated)")


# The text of a call that full-text search sees: every text part of its messages.
_PROMPT_TEXT = (
    "(SELECT group_concat(value, ' ') FROM json_tree({row}.request, '$.messages') "
    "WHERE key = 'text' AND type = 'text')"
)


def m006_calls_search(db: sqlite3.Connection) -> None:
    """Full-text search over the call log (``callm logs -q``): an FTS5 index of each call's
    prompt and reply (or error), kept in step with ``calls`` by triggers, rowid for rowid."""
    db.execute(
        "CREATE VIRTUAL TABLE calls_fts USING fts5(prompt, reply, "
        "tokenize = 'unicode61 remove_diacritics 2')"
    )
    new_text = _PROMPT_TEXT.format(row="new")
    db.execute(
        f"""
        CREATE TRIGGER calls_fts_insert AFTER INSERT ON calls BEGIN
            INSERT INTO calls_fts (rowid, prompt, reply) VALUES
                (new.rowid, {new_text}, coalesce(new.response, new.error, ''));
        END
        """
    )
    db.execute(
        "CREATE TRIGGER calls_fts_delete AFTER DELETE ON calls BEGIN "
        "DELETE FROM calls_fts WHERE rowid = old.rowid; END"
    )
    db.execute(
        f"INSERT INTO calls_fts (rowid, prompt, reply) SELECT rowid, "
        f"{_PROMPT_TEXT.format(row='calls')}, coalesce(response, error, '') FROM calls"
    )
    db.execute("CREATE INDEX calls_provider ON calls (provider, time)")


def m007_batches(db: sqlite3.Connection) -> None:
    """Batch jobs (``callm batch``, ``callm.batch``): one row per output file, one per
    answered or failed input line, and the provider-side batches a job submitted."""
    db.execute(
        """
        CREATE TABLE batch_jobs (
            id TEXT PRIMARY KEY,
            output TEXT NOT NULL UNIQUE,        -- absolute path: one job per output file
            input TEXT NOT NULL,                -- absolute path of the input it answers
            fingerprint TEXT NOT NULL,          -- sha256 of the input, to notice a change
            total INTEGER NOT NULL,             -- lines in the input
            created TEXT NOT NULL,
            updated TEXT NOT NULL,
            mode TEXT NOT NULL DEFAULT 'direct', -- 'direct' or 'provider' (Batch APIs)
            options TEXT NOT NULL DEFAULT '{}', -- JSON: the options it was started with
            output_bytes INTEGER NOT NULL DEFAULT 0  -- the output's length, every result in
        )
        """
    )
    db.execute(
        """
        CREATE TABLE batch_items (
            job_id TEXT NOT NULL,
            line INTEGER NOT NULL,              -- 1-based line number in the input
            item_id TEXT NOT NULL,              -- JSON of the line's id
            status TEXT NOT NULL,               -- 'done' or 'failed'
            result TEXT,                        -- the output line, until it is written
            error TEXT,                         -- JSON: type, message, status_code
            written INTEGER NOT NULL DEFAULT 0, -- 1 once the result is in the output file
            attempts INTEGER NOT NULL DEFAULT 1,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cost TEXT,                          -- exact Decimal USD; NULL = unknown
            PRIMARY KEY (job_id, line)
        ) WITHOUT ROWID
        """
    )
    db.execute("CREATE INDEX batch_items_unwritten ON batch_items (job_id, written, line)")
    db.execute(
        """
        CREATE TABLE provider_batches (
            job_id TEXT NOT NULL,
            provider TEXT NOT NULL,             -- the callm provider name
            batch_id TEXT NOT NULL,             -- the provider's id of the batch
            model TEXT NOT NULL,                -- provider/model
            lines TEXT NOT NULL,                -- JSON list of the input lines it carries
            state TEXT NOT NULL,                -- 'submitted', then 'collected'
            detail TEXT NOT NULL DEFAULT '{}',  -- JSON: file ids, counts, last status seen
            submitted TEXT NOT NULL,
            PRIMARY KEY (job_id, batch_id)
        )
        """
    )


def m008_usage_reported(db: sqlite3.Connection) -> None:
    """Whether a call's provider reported its usage: when not, its tokens are unknown."""
    db.execute("ALTER TABLE calls ADD COLUMN usage_reported INTEGER NOT NULL DEFAULT 1")


def m009_calls_search_on_demand(db: sqlite3.Connection) -> None:
    """Full-text search indexed on demand: the call log's writer no longer feeds the FTS5
    index on every insert (that trigger made a logged call ~4x dearer to write); a search
    first indexes the calls above ``calls_fts_state.indexed_to`` (``_store._search``).

    Deleting a call still deletes its index entry (m006's trigger), and now also lowers
    the mark to the highest rowid left: a rowid table gives the rowids of its newest rows
    again once they are deleted, and such new rows must not sit under the mark unindexed."""
    db.execute("DROP TRIGGER IF EXISTS calls_fts_insert")
    db.execute("CREATE TABLE calls_fts_state (indexed_to INTEGER NOT NULL)")
    # Every call so far was indexed, by that trigger or by m006.
    db.execute("INSERT INTO calls_fts_state SELECT coalesce(max(rowid), 0) FROM calls")
    db.execute(
        """
        CREATE TRIGGER calls_fts_mark AFTER DELETE ON calls BEGIN
            UPDATE calls_fts_state SET indexed_to = coalesce((SELECT max(rowid) FROM calls), 0)
                WHERE indexed_to > coalesce((SELECT max(rowid) FROM calls), 0);
        END
        """
    )


MIGRATIONS: list[Migration] = [
    m001_calls,
    m002_spend,
    m003_cache,
    m004_indexes,
    m005_conversations,
    m006_calls_search,
    m007_batches,
    m008_usage_reported,
    m009_calls_search_on_demand,
]


def applied(db: sqlite3.Connection) -> list[str]:
    """The names of the migrations already applied to ``db``, in the order they ran."""
    try:
        rows = db.execute("SELECT name FROM _migrations ORDER BY rowid").fetchall()
    except sqlite3.OperationalError:  # no _migrations table yet: a new database
        return []
    return [name for (name,) in rows]


def migrate(
    db: sqlite3.Connection,
    migrations: Sequence[Migration] = MIGRATIONS,
    *,
    where: Path | str = "the database",
) -> list[str]:
    """Apply the migrations ``db`` lacks, in order, in one transaction; return their names.

    ``db`` must be in autocommit mode (``isolation_level=None``). Safe when several
    processes open a new database at once: the write lock is taken before re-checking
    what is applied, so each migration runs exactly once.
    """
    known = {m.__name__ for m in migrations}
    done_before = applied(db)
    unknown = [name for name in done_before if name not in known]
    if unknown:  # a newer callm migrated it: its tables may not mean what this one thinks
        raise newer_schema(where, unknown)
    if known <= set(done_before):
        return []
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT)"
        )
        done = set(applied(db))
        ran = [m.__name__ for m in migrations if m.__name__ not in done]
        for migration in migrations:
            if migration.__name__ in done:
                continue
            migration(db)
            db.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                (migration.__name__, datetime.now(UTC).isoformat()),
            )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return ran
