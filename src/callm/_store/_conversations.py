"""Conversations in the store: a header row each and their messages, appended as they happen.

Messages are kept whole — images and documents included, since resuming a conversation
sends them again — but never a key: every string except binary payloads (``data:`` URLs,
reasoning signatures and encrypted content) has key-shaped text masked as ``***`` before it
is written. Base64 payloads are not redacted here, unlike the call log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .._core.types import Message, Usage
from ._db import iso_time
from ._record import message_from_json, message_json
from ._redact import mask_keys

if TYPE_CHECKING:
    from ._db import Store

# Fields holding opaque binary payloads: masking "keys" inside them would corrupt them.
_PAYLOAD_FIELDS = frozenset({"signature", "data", "encrypted_content", "thought_signature"})
_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "reported",
)
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


@dataclass(frozen=True, slots=True)
class StoredConversation:
    """A conversation as stored: its settings, summary, running totals and history."""

    id: str
    model: str | None
    system: str | None
    options: Mapping[str, object] = field(default_factory=dict)
    summary: str | None = None
    summary_covers: int = 0
    usage: Usage = field(default_factory=Usage)
    cost: Decimal | None = None
    messages: tuple[Message, ...] = ()
    created: datetime | None = None
    updated: datetime | None = None


def save_conversation(
    store: Store,
    conv: StoredConversation,
    new: Sequence[Message],
    *,
    usage: Usage | None = None,
    cost: Decimal | None = Decimal(0),
) -> int:
    """Write ``conv``'s header and append ``new``, its latest messages, in one transaction.

    Appending is atomic against the store, so several processes may continue one
    conversation at once and none loses a turn: ``new`` goes after whatever is stored by
    then (another writer's turns included), and ``usage`` / ``cost`` — what the calls
    since the last save used, None for an unknown cost — are added to the stored totals
    (a conversation not yet stored starts from ``conv``'s own). Returns how many messages
    were stored before ``new``: more than ``conv`` knew of means another writer came first.
    """
    now = iso_time(datetime.now(UTC))
    with store._write() as db:
        (stored_count,) = db.execute(
            "SELECT COALESCE(MAX(position) + 1, 0) FROM conversation_messages "
            "WHERE conversation_id = ?",
            (conv.id,),
        ).fetchone()
        totals = db.execute(
            "SELECT usage, cost FROM conversations WHERE id = ?", (conv.id,)
        ).fetchone()
        total_usage, total_cost = _totals(conv, totals, usage, cost)
        db.execute(
            "INSERT INTO conversations (id, created, updated, model, system, options, summary, "
            "summary_covers, usage, cost) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET updated = excluded.updated, model = excluded.model, "
            "system = excluded.system, options = excluded.options, summary = excluded.summary, "
            "summary_covers = excluded.summary_covers, usage = excluded.usage, "
            "cost = excluded.cost",
            (
                conv.id,
                now,
                now,
                conv.model,
                _mask(conv.system),
                _encode(conv.options),
                _mask(conv.summary),
                conv.summary_covers,
                _encode({name: getattr(total_usage, name) for name in _USAGE_FIELDS}),
                None if total_cost is None else str(total_cost),
            ),
        )
        db.executemany(
            "INSERT INTO conversation_messages (conversation_id, position, time, message) "
            "VALUES (?, ?, ?, ?)",
            [
                (conv.id, stored_count + i, now, _encode(_masked_message(m)))
                for i, m in enumerate(new)
            ],
        )
    return int(stored_count)


def _totals(
    conv: StoredConversation,
    stored: tuple[str, str | None] | None,
    usage: Usage | None,
    cost: Decimal | None,
) -> tuple[Usage, Decimal | None]:
    """The usage and cost to store: the stored totals plus this save's share."""
    if stored is None or usage is None:  # new here, or a caller that gives whole totals
        return conv.usage, conv.cost
    stored_usage = Usage(**json.loads(stored[0]))
    stored_cost = None if stored[1] is None else Decimal(stored[1])
    total_cost = None if stored_cost is None or cost is None else stored_cost + cost
    return stored_usage + usage, total_cost


def load_conversation(store: Store, conversation_id: str) -> StoredConversation | None:
    """The stored conversation ``conversation_id``, or None when there is none."""
    rows = store._read(
        "SELECT id, model, system, options, summary, summary_covers, usage, cost, created, "
        "updated FROM conversations WHERE id = ?",
        (conversation_id,),
    )
    if not rows:
        return None
    id_, model, system, options, summary, covers, usage, cost, created, updated = rows[0]
    messages = store._read(
        "SELECT message FROM conversation_messages WHERE conversation_id = ? ORDER BY position",
        (conversation_id,),
    )
    return StoredConversation(
        id=id_,
        model=model,
        system=system,
        options=json.loads(options),
        summary=summary,
        summary_covers=covers,
        usage=Usage(**json.loads(usage)),
        cost=None if cost is None else Decimal(cost),
        messages=tuple(message_from_json(json.loads(m)) for (m,) in messages),
        created=datetime.fromisoformat(created),
        updated=datetime.fromisoformat(updated),
    )


def recent_conversations(store: Store, limit: int = 20) -> list[StoredConversation]:
    """The latest ``limit`` conversations, most recently updated first (without messages)."""
    rows = store._read(
        "SELECT id, model, system, created, updated FROM conversations "
        "ORDER BY updated DESC, rowid DESC LIMIT ?",
        (limit,),
    )
    return [
        StoredConversation(
            id=id_,
            model=model,
            system=system,
            created=datetime.fromisoformat(created),
            updated=datetime.fromisoformat(updated),
        )
        for id_, model, system, created, updated in rows
    ]


# -- masking keys, and only keys ---------------------------------------------------------------


def _masked_message(message: Message) -> Any:
    return _masked(message_json(message))


def _masked(value: Any, name: str = "") -> Any:
    if isinstance(value, str):
        if name in _PAYLOAD_FIELDS or value.startswith("data:"):
            return value
        return _mask(value)
    if isinstance(value, Mapping):
        return {k: _masked(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value


def _mask(text: str | None) -> str | None:
    """``text`` with key-shaped strings masked (images and other payloads kept intact)."""
    return mask_keys(text) if text else text
