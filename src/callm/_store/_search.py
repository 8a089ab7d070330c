"""Finding and deleting calls in the log: full-text search (FTS5) and filters.

``CallFilter`` says which calls; :func:`find_calls` reads them newest first and
:func:`delete_calls` removes them (their search index entries go with them, by trigger).

The FTS5 index is brought up to date by the search itself, not by the call log's writer:
:func:`index_new_calls` indexes every call above the high-water mark in
``calls_fts_state`` in one transaction (migration m009), so logging a call costs no
tokenising and a search sees every call logged before it, by any process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._db import _CALL_COLUMNS, _call_record, iso_time
from ._migrations import _PROMPT_TEXT
from ._record import CallRecord

if TYPE_CHECKING:
    from ._db import Store

ANY_ERROR = "error"  # the status filter that matches every failed call


@dataclass(frozen=True, slots=True)
class CallFilter:
    """Which calls: each field given narrows the selection (all of them must hold).

    ``query`` is searched in prompts and replies (or errors) as words, every word required,
    in any order; a word ending in ``*`` matches any word it begins. ``model`` matches the
    model or ``provider/model``. ``status`` is ``"ok"``, ``"error"`` (any failure) or an
    error class name such as ``"RateLimitError"``. ``since`` / ``before`` bound the time.
    """

    query: str | None = None
    model: str | None = None
    provider: str | None = None
    conversation_id: str | None = None
    status: str | None = None
    since: datetime | None = None
    before: datetime | None = None
    ids: tuple[str, ...] = ()

    def where(self) -> tuple[str, list[Any]]:
        """The SQL condition (``1`` when nothing is filtered) and its parameters."""
        clauses: list[str] = []
        params: list[Any] = []

        def add(clause: str, *values: Any) -> None:
            clauses.append(clause)
            params.extend(values)

        if self.query is not None and self.query.strip():
            add(
                "rowid IN (SELECT rowid FROM calls_fts WHERE calls_fts MATCH ?)",
                fts_query(self.query),
            )
        if self.model is not None:
            add("(model = ? OR provider || '/' || model = ?)", self.model, self.model)
        if self.provider is not None:
            add("provider = ?", self.provider)
        if self.conversation_id is not None:
            add("conversation_id = ?", self.conversation_id)
        if self.status == ANY_ERROR:
            add("status != 'ok'")
        elif self.status is not None:
            add("status = ?", self.status)
        if self.since is not None:
            add("time >= ?", iso_time(self.since))
        if self.before is not None:
            add("time < ?", iso_time(self.before))
        if self.ids:
            add(f"id IN ({', '.join('?' * len(self.ids))})", *self.ids)
        return " AND ".join(clauses) or "1", params


def fts_query(text: str) -> str:
    """``text`` as an FTS5 query of plain words: every word quoted, so punctuation and FTS
    operators in it are searched as text, never parsed; a trailing ``*`` stays a prefix."""
    terms = []
    for word in text.split():
        prefix = word.endswith("*") and len(word) > 1
        core = word[:-1] if prefix else word
        terms.append('"' + core.replace('"', '""') + '"' + ("*" if prefix else ""))
    return " ".join(terms)


_INDEX_NEW_CALLS = (
    # OR REPLACE: a call indexed already (a database migrated out of order) is not an error.
    "INSERT OR REPLACE INTO calls_fts (rowid, prompt, reply) SELECT rowid, "
    f"{_PROMPT_TEXT.format(row='calls')}, coalesce(response, error, '') "
    "FROM calls WHERE rowid > ? AND rowid <= ? ORDER BY rowid"
)


def index_new_calls(store: Store) -> int:
    """Add the calls logged since the last search to the search index; return how many.

    A store already up to date costs one read and takes no write lock. Otherwise every
    call above the mark is indexed, ``_INDEX_CHUNK`` rowids a transaction, each moving
    the mark with it: two searches at once index each call once, and a search over a
    large log that was never indexed holds the write lock (which the call log's writers
    wait for) for tens of milliseconds at a time, not seconds.
    """
    added = 0
    while True:
        [(mark, last)] = store._read(_MARK_AND_LAST)
        if last <= mark:
            return added
        with store._write() as db:
            [(mark, last)] = db.execute(_MARK_AND_LAST).fetchall()  # another may have indexed
            upto = min(last, mark + _INDEX_CHUNK)
            added += db.execute(_INDEX_NEW_CALLS, (mark, upto)).rowcount
            db.execute("UPDATE calls_fts_state SET indexed_to = ?", (upto,))


_INDEX_CHUNK = 5_000
_MARK_AND_LAST = (
    "SELECT (SELECT indexed_to FROM calls_fts_state), coalesce((SELECT max(rowid) FROM calls), 0)"
)


def _searchable(store: Store, selection: CallFilter) -> None:
    """Bring the index up to date when ``selection`` searches text."""
    if selection.query is not None and selection.query.strip():
        index_new_calls(store)


def find_calls(store: Store, selection: CallFilter, limit: int) -> list[CallRecord]:
    """The latest ``limit`` calls that ``selection`` picks, newest first."""
    _searchable(store, selection)
    where, params = selection.where()
    rows = store._read(
        f"SELECT {_CALL_COLUMNS} FROM calls WHERE {where} ORDER BY time DESC, rowid DESC LIMIT ?",
        [*params, limit],
    )
    return [_call_record(row) for row in rows]


def delete_calls(store: Store, selection: CallFilter) -> int:
    """Delete every call ``selection`` picks; return how many were deleted."""
    _searchable(store, selection)
    where, params = selection.where()
    with store._write() as db:
        return db.execute(f"DELETE FROM calls WHERE {where}", params).rowcount


def count_calls(store: Store, selection: CallFilter) -> int:
    """How many calls ``selection`` picks."""
    _searchable(store, selection)
    where, params = selection.where()
    [(count,)] = store._read(f"SELECT COUNT(*) FROM calls WHERE {where}", params)
    return int(count)


__all__: Sequence[str] = [
    "ANY_ERROR",
    "CallFilter",
    "count_calls",
    "delete_calls",
    "find_calls",
    "fts_query",
    "index_new_calls",
]
