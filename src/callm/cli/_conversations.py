"""``callm conversations``: the stored conversations, latest first, to continue with --cid."""

from __future__ import annotations

from typing import Any

import click

from .._config.settings import Settings
from .._store._conversations import StoredConversation, load_conversation, recent_conversations
from ._calldb import existing_store
from ._group import debug_option
from ._output import dumps, money

_SHOWN = 60  # characters of the first message shown per conversation


@click.command("conversations", short_help="List stored conversations, latest first.")
@click.option(
    "-n",
    "--count",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="How many of the latest conversations to list.",
)
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
@debug_option
def conversations_command(count: int, as_json: bool) -> None:
    """List the stored conversations, most recently used first: id, time, model, turns,
    cost and how each began. Continue one with `callm --cid ID "…"` or `callm chat --cid ID`.

    \b
    Examples:
      callm conversations -n 20
      callm conversations --json | jq -r '.[0].id'
    """
    settings = Settings()
    with existing_store(settings) as store:
        found = [] if store is None else _with_messages(store, count)
    if as_json:
        click.echo(dumps([_json(c) for c in found]))
    elif not found:
        click.echo(
            f'No conversations yet in {settings.home / "callm.db"}: start one with callm "…"'
        )
    else:
        click.echo("\n".join(_line(c) for c in found))


def _with_messages(store: Any, count: int) -> list[StoredConversation]:
    loaded = (load_conversation(store, c.id) for c in recent_conversations(store, count))
    return [c for c in loaded if c is not None]


def _first_words(conversation: StoredConversation) -> str:
    first = next((m.text for m in conversation.messages if m.role == "user"), "")
    flat = " ".join(first.split())
    return flat if len(flat) <= _SHOWN else flat[: _SHOWN - 1] + "…"


def _line(conversation: StoredConversation) -> str:
    when = (
        conversation.updated.astimezone().isoformat(timespec="seconds")
        if conversation.updated
        else "?"
    )
    turns = sum(m.role == "user" for m in conversation.messages)
    cost = money(conversation.cost) if conversation.cost is not None else "cost unknown"
    return (
        f"{conversation.id}  {when}  {conversation.model or '(default model)'}  "
        f"{turns} turn{'s' if turns != 1 else ''}  {cost}  {_first_words(conversation)!r}"
    )


def _json(conversation: StoredConversation) -> dict[str, object]:
    return {
        "id": conversation.id,
        "model": conversation.model,
        "system": conversation.system,
        "created": conversation.created.isoformat() if conversation.created else None,
        "updated": conversation.updated.isoformat() if conversation.updated else None,
        "messages": len(conversation.messages),
        "usage": {
            "input_tokens": conversation.usage.input_tokens,
            "output_tokens": conversation.usage.output_tokens,
        },
        "cost": None if conversation.cost is None else str(conversation.cost),
        "first_message": _first_words(conversation),
    }
