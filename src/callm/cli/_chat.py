"""``callm chat``: a chat at the terminal that keeps its history in a stored conversation.

Lines come from stdin — typed at a ``> `` prompt (on stderr, so stdout holds only the
answers) or piped in — and each is sent with the conversation so far; the answer streams to
stdout. A turn that fails or is stopped with Ctrl-C leaves the history as it was.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator
from typing import TYPE_CHECKING, TextIO

import click

from .._client import CallParams, Client
from .._core.errors import CallmError
from ._chat_commands import ChatState, messages, run_command
from ._group import EXIT_API_ERROR, CLIError, debug_option, debugging
from ._prompt import (
    call_params,
    cid_option,
    continue_option,
    max_tokens_option,
    model_option,
    no_log_option,
    open_conversation,
    options_option,
    print_stream,
    system_option,
    temperature_option,
    timeout_option,
)

if TYPE_CHECKING:
    from .._features.conversation import Conversation

EXIT_WORDS = frozenset({"exit", "quit"})


@click.command("chat")
@model_option
@system_option
@continue_option
@cid_option
@options_option
@max_tokens_option
@temperature_option
@timeout_option
@no_log_option
@debug_option
def chat_command(
    *,
    model: str | None,
    system: str | None,
    continue_last: bool,
    cid: str | None,
    options: tuple[str, ...],
    max_tokens: int | None,
    temperature: float | None,
    timeout: float | None,
    no_log: bool,
) -> None:
    """Chat with a model: each line is sent with the conversation so far.

    Empty lines are skipped; `exit`, `quit` or the end of input (Ctrl-D) leave. Ctrl-C
    stops an answer (it is not kept) and, at the prompt, leaves (exit status 130). Lines
    can be piped too: `printf 'hi\\nand then?\\n' | callm chat`. A failed answer prints
    one error line and the chat goes on without it; the exit status is then 1.

    The conversation is stored like every `callm "prompt"`: `callm -c` or `callm chat -c`
    carries on from it later (unless --no-log).

    Slash commands: /model NAME switches model (the history goes on), /system TEXT
    replaces the system prompt, /reset starts afresh, /save [FILE] writes the chat as
    Markdown, /exit leaves, /help lists them. A paste of several lines is one message, and
    so is a block between two lines of three double quotes.

    \b
    Examples:
      callm chat -m anthropic/claude-haiku-4-5 -s "You are a patient tutor."
      callm chat -c                      (carry on with the latest conversation)
      printf 'hi\n/model local/offline\nand you?\n' | callm chat
    """
    params = call_params(options, max_tokens, temperature, no_log=no_log, timeout=timeout)
    interactive = _is_terminal(sys.stdin)
    with Client() as client:
        conv = open_conversation(
            client, model, system, continue_last=continue_last, cid=cid, persist=not no_log
        )
        client.resolve_model(conv.model)  # an unknown provider or a missing key ends it here
        if interactive:
            _banner(conv, stored=not no_log)
        debug = debugging(click.get_current_context())
        state = ChatState(client, conv, persist=not no_log)
        markdown = sys.stdout.isatty()
        failures = 0
        for text in _lines(interactive):
            if text.startswith("/"):
                if not run_command(state, text):
                    break
                continue
            failures += not _answer(state.conv, text, params, debug=debug, markdown=markdown)
    if failures:
        raise click.exceptions.Exit(EXIT_API_ERROR)


def _is_terminal(stream: TextIO | None) -> bool:
    return stream is not None and stream.isatty()


def _banner(conv: Conversation, *, stored: bool) -> None:
    """One stderr line: the model, the conversation and the way out."""
    history = sum(m.role != "system" for m in conv.messages)
    where = f"conversation {conv.id}" if stored else "conversation not stored (--no-log)"
    if history:
        where += f", continued after {history} messages"
    click.echo(
        f"callm chat with {conv.model}, {where}. /help lists the commands; type exit or quit "
        "(or press Ctrl-D) to leave.",
        err=True,
    )


def _lines(interactive: bool) -> Iterator[str]:
    """The messages to send: non-empty lines, blocks and pastes, up to ``exit``, ``quit`` or
    the end of input."""
    read = _typed_line if interactive else _piped_line
    typed = messages(read)
    while True:
        try:
            text = next(typed).strip()
        except (EOFError, StopIteration):
            if interactive:  # leave the shell's prompt on a line of its own
                click.echo(err=True)
            return
        if text.lower() in EXIT_WORDS:
            return
        if text:
            yield text


def _typed_line() -> str:
    """A line typed at the ``> `` prompt, with line editing where readline is available."""
    with contextlib.suppress(ImportError):  # no readline on Windows
        import readline  # noqa: F401 — importing it gives input() history and editing
    if sys.stdout.isatty():
        return input("> ")
    click.echo("> ", nl=False, err=True)  # stdout is redirected: it gets the answers only
    return input()


def _piped_line() -> str:
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line


def _answer(
    conv: Conversation, text: str, params: CallParams, *, debug: bool, markdown: bool
) -> bool:
    """Send one message and stream its answer; False when the call failed."""
    try:
        print_stream(lambda: conv.stream(text, **params), markdown=markdown)
    except KeyboardInterrupt:
        click.echo("callm: answer stopped; it is not kept in the conversation", err=True)
    except CallmError as exc:
        if debug:
            traceback.print_exc()
        CLIError(str(exc)).show()
        return False
    return True


__all__ = ["chat_command"]
