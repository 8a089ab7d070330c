"""``callm chat``'s slash commands and multi-line input.

``/model NAME`` switches model (the history goes on), ``/system TEXT`` replaces the system
prompt, ``/reset`` starts a new conversation, ``/save [FILE]`` writes the chat as Markdown,
``/exit`` leaves and ``/help`` lists them. A message can span lines: a line holding only
triple quotes opens a block that the next such line closes; and text pasted at the prompt
arrives as one message however many lines it has, since readline takes a terminal's
bracketed paste as one input (lines typed ahead stay separate messages).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .._core.errors import CallmError
from ._group import CLIError

if TYPE_CHECKING:
    from .._client import Client
    from .._features.conversation import Conversation

BLOCK = '"""'
HELP = """\
/model NAME     switch to another model (the conversation goes on); /model shows it
/system TEXT    replace the system prompt; /system shows it
/reset          start a new, empty conversation
/save [FILE]    write the conversation as Markdown (default: chat-ID.md)
/exit           leave (so do exit, quit and Ctrl-D)
\"\"\"           on a line of its own: start or end a message of several lines"""


@dataclass
class ChatState:
    """The chat's conversation, replaced by /model, /system and /reset."""

    client: Client
    conv: Conversation
    persist: bool

    def reopen(self, model: str | None, system: str | None) -> None:
        """The same history under a new model or system prompt."""
        conv = self.conv
        if self.persist:
            self.conv = self.client.conversation(model, system=system, id=conv.id)
            return
        fresh = self.client.conversation(model, system=system, persist=False)
        fresh.append(*(m for m in conv.messages if m.role != "system"))
        self.conv = fresh


def run_command(state: ChatState, line: str) -> bool:
    """Carry out the slash command ``line``; False when the chat should end."""
    name, _, argument = line.strip().partition(" ")
    argument = argument.strip()
    action = _COMMANDS.get(name.lower())
    if action is None:
        CLIError(f"unknown command {name}; /help lists the commands").show()
        return True
    try:
        return action(state, argument)
    except CallmError as exc:
        CLIError(str(exc)).show()
        return True


def _model(state: ChatState, argument: str) -> bool:
    if not argument:
        click.echo(f"model: {state.conv.model}", err=True)
        return True
    state.client.resolve_model(argument)  # an unknown provider or a missing key fails here
    state.reopen(argument, state.conv.system)
    click.echo(f"model: {argument} (the conversation goes on)", err=True)
    return True


def _system(state: ChatState, argument: str) -> bool:
    if not argument:
        click.echo(f"system: {state.conv.system or '(none)'}", err=True)
        return True
    state.reopen(state.conv.model, argument)
    click.echo("system prompt replaced", err=True)
    return True


def _reset(state: ChatState, argument: str) -> bool:
    conv = state.conv
    state.conv = state.client.conversation(conv.model, system=conv.system, persist=state.persist)
    where = f"conversation {state.conv.id}" if state.persist else "a conversation not stored"
    click.echo(f"new, empty {where}", err=True)
    return True


def _save(state: ChatState, argument: str) -> bool:
    conv = state.conv
    path = Path(argument) if argument else Path(f"chat-{conv.id}.md")
    lines = [f"# Chat with {conv.model}", ""]
    for message in conv.messages:
        lines += [f"## {message.role}", "", message.text, ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    click.echo(f"saved {len(conv.messages)} messages to {path}", err=True)
    return True


def _exit(state: ChatState, argument: str) -> bool:
    return False


def _help(state: ChatState, argument: str) -> bool:
    click.echo(HELP, err=True)
    return True


_COMMANDS: dict[str, Callable[[ChatState, str], bool]] = {
    "/model": _model,
    "/system": _system,
    "/reset": _reset,
    "/save": _save,
    "/exit": _exit,
    "/quit": _exit,
    "/help": _help,
}


def messages(read: Callable[[], str]) -> Iterator[str]:
    """The messages typed or piped: single lines, and triple-quoted blocks joined.

    Raises EOFError at the end of input, as ``read`` does.
    """
    while True:
        line = read().rstrip("\n")
        yield _block(read) if line.strip() == BLOCK else line


def _block(read: Callable[[], str]) -> str:
    """The lines up to the closing triple quotes (or the end of input)."""
    lines: list[str] = []
    while True:
        try:
            line = read().rstrip("\n")
        except EOFError:
            break
        if line.strip() == BLOCK:
            break
        lines.append(line)
    return "\n".join(lines)
