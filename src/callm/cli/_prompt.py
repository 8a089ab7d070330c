"""``callm "prompt"``: send a prompt and print the answer as it arrives.

Every prompt is a turn of a stored conversation (``$CALLM_HOME/callm.db``), so ``callm -c``
can carry on from it and ``callm chat`` can pick it up; ``--no-log`` keeps it out of the
store. ``--raw`` and ``--curl`` are single calls outside any conversation.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

import click

from .._client import CallParams, Client
from .._config.settings import LOCAL_NOTICE
from .._core.types import RefusalDelta, Response, TextDelta
from ._curl import curl_command
from ._group import EXIT_INTERRUPTED, debug_option
from ._options import OptionError, parse_options
from ._output import answer_writer, dumps, response_json, usage_line

if TYPE_CHECKING:
    from .._engine.stream import Stream
    from .._features.conversation import Conversation

HOW_TO_START = 'start one with `callm "prompt"` or `callm chat`'

model_option = click.option(
    "-m",
    "--model",
    metavar="PROVIDER/MODEL",
    help="The model, e.g. openai/gpt-4o-mini (default: the configured one; when "
    "continuing, the conversation's own).",
)
system_option = click.option(
    "-s",
    "--system",
    metavar="TEXT",
    help="A system prompt (when continuing, it replaces the conversation's from now on).",
)
options_option = click.option(
    "-o",
    "--option",
    "options",
    metavar="KEY=VALUE",
    multiple=True,
    help="A request option, repeatable; VALUE is read as JSON when it parses. Known "
    "parameters (temperature, top_p, stop, seed, n, user, tool_choice, response_format, "
    "max_tokens) are checked; anything else goes into the request body as is.",
)
max_tokens_option = click.option(
    "--max-tokens", type=click.IntRange(min=1), help="The most tokens to generate."
)
temperature_option = click.option(
    "--temperature", type=float, help="Sampling temperature, e.g. 0.2."
)
continue_option = click.option(
    "-c",
    "--continue",
    "continue_last",
    is_flag=True,
    help="Continue the most recent conversation: its history is sent first, with its "
    "model and system prompt unless -m or -s is given.",
)
cid_option = click.option(
    "--cid", metavar="ID", help="Continue the stored conversation with this id (like -c)."
)
timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Give up on an answer (retries included) that is not complete after SECONDS; "
    "default: an hour, and ten minutes without a word of a streamed answer.",
)
no_log_option = click.option(
    "--no-log",
    is_flag=True,
    help="Private: leave the call out of the call log (`callm logs`, `callm usage`) and "
    "store nothing of the conversation, so it cannot be continued later. CALLM_LOG=0 "
    "turns the call log off for every call.",
)


@click.command("prompt")
@click.argument("prompt", required=False)
@model_option
@system_option
@options_option
@max_tokens_option
@temperature_option
@continue_option
@cid_option
@timeout_option
@click.option("--no-stream", is_flag=True, help="Wait for the whole answer, then print it.")
@click.option(
    "-u",
    "--usage",
    "show_usage",
    is_flag=True,
    help="After the answer, print its tokens, cost, latency and time to first token (stderr).",
)
@click.option(
    "--plain",
    is_flag=True,
    help="Print the answer as plain text even on a terminal (it is rendered as Markdown "
    "there by default; piped output is always plain).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the normalised response as JSON: text, usage, timing, cost, "
    "conversation_id … (the answer is still streamed, silently, unless --no-stream is given).",
)
@click.option(
    "--raw",
    is_flag=True,
    help="Print the provider's own JSON response (one call outside any conversation, "
    "not streamed).",
)
@click.option(
    "--curl",
    is_flag=True,
    help="Print the equivalent curl command (streamed unless --no-stream, key redacted) "
    "instead of sending it.",
)
@no_log_option
@debug_option
@click.version_option(package_name="callm", prog_name="callm")
def prompt_command(
    *,
    prompt: str | None,
    model: str | None,
    system: str | None,
    options: tuple[str, ...],
    max_tokens: int | None,
    temperature: float | None,
    continue_last: bool,
    cid: str | None,
    timeout: float | None,
    no_stream: bool,
    show_usage: bool,
    plain: bool,
    as_json: bool,
    raw: bool,
    curl: bool,
    no_log: bool,
) -> None:
    """Send PROMPT to a model and stream the answer to stdout.

    Text piped to stdin is added after the prompt (or is the prompt when none is given):
    `git diff | callm "review this"`. With no key configured, callm answers with its
    offline local model and says so on stderr.

    Each prompt starts a stored conversation: `callm -c "and then?"` continues the latest
    one, `callm --cid ID "…"` a given one (the id is in `--json` output).

    \b
    Examples:
      callm "Explain an API call in one sentence."
      callm -m anthropic/claude-haiku-4-5 -s "Be terse." --max-tokens 100 "Why is the sky blue?"
      git diff | callm -u "review this"         (then tokens, cost and timing on stderr)
      callm -c "and in one word?"
      callm --json --no-stream "hi" | jq .usage
    """
    _one_output(as_json=as_json, raw=raw, curl=curl)
    if (raw or curl) and (continue_last or cid):
        raise click.UsageError("--raw and --curl send the prompt alone; drop -c / --cid")
    text = _prompt_text(prompt)
    params = call_params(options, max_tokens, temperature, no_log=no_log, timeout=timeout)
    with Client() as client:
        if raw or curl:
            _single_call(client, model, system, text, params, curl=curl, stream=not no_stream)
            return
        conv = open_conversation(
            client, model, system, continue_last=continue_last, cid=cid, persist=not no_log
        )
        if as_json:
            response = _complete(conv, text, params, stream=not no_stream)
            stored_id = None if no_log else conv.id
            click.echo(dumps({**response_json(response), "conversation_id": stored_id}))
        else:
            markdown = not plain and sys.stdout.isatty()
            response = _answer(conv, text, params, stream=not no_stream, markdown=markdown)
            if show_usage:
                click.echo(usage_line(response), err=True)


def _answer(
    conv: Conversation, text: str, params: CallParams, *, stream: bool, markdown: bool
) -> Response:
    """Print the answer, streamed or whole; Ctrl-C while it streams exits 130."""
    if not stream:
        response = conv.send(text, **params)
        _print_text(response.text, markdown=markdown)
        return response
    try:
        return print_stream(lambda: conv.stream(text, **params), markdown=markdown)
    except KeyboardInterrupt:
        raise click.exceptions.Exit(EXIT_INTERRUPTED) from None


def _one_output(*, as_json: bool, raw: bool, curl: bool) -> None:
    if as_json + raw + curl > 1:
        raise click.UsageError("choose one of --json, --raw and --curl")


def _prompt_text(prompt: str | None) -> str:
    """The prompt argument and piped stdin, joined by a blank line."""
    piped = _read_stdin()
    if prompt and piped:
        return f"{prompt}\n\n{piped}"
    text = prompt or piped
    if not text:
        raise click.UsageError('give a prompt, e.g. callm "hello", or pipe text to stdin')
    return text


def _read_stdin() -> str:
    """Everything piped to stdin (trailing newlines dropped); nothing when stdin is a terminal."""
    stdin = sys.stdin
    if stdin is None or stdin.isatty():
        return ""
    raw = getattr(stdin, "buffer", None)
    if raw is None:  # a text stream with no bytes under it (an embedding app's)
        text = stdin.read()
    else:
        data = raw.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise click.UsageError(
                f"stdin is not UTF-8 text (byte {exc.start}: {data[exc.start : exc.end]!r}); "
                "convert it first, e.g. `iconv -f latin1 -t utf-8 FILE | callm …`"
            ) from None
    return text.rstrip("\n") if text.strip() else ""


def call_params(
    options: Sequence[str],
    max_tokens: int | None,
    temperature: float | None,
    *,
    no_log: bool,
    timeout: float | None = None,
) -> CallParams:
    """The keyword arguments of each call, from -o, --max-tokens, --temperature, --no-log
    and --timeout."""
    try:
        params, extra_body = parse_options(options)
    except OptionError as exc:
        raise click.BadParameter(str(exc), param_hint="'-o'") from None
    for key, value in (("max_tokens", max_tokens), ("temperature", temperature)):
        if value is not None:
            if key in params:
                flag = "--" + key.replace("_", "-")
                raise click.UsageError(f"give {key} once: either {flag} or -o {key}=…")
            params[key] = value
    if extra_body:
        params["extra_body"] = extra_body
    if no_log:
        params["log"] = False
    if timeout is not None:
        params["timeout"] = timeout
    return cast(CallParams, params)


def choose_model(client: Client, model: str | None) -> str:
    """The model named with -m, else the configured default (announcing the offline model)."""
    if model:
        return model
    default, offline = client.settings.default_model()
    if offline:
        # Passing the model on explicitly keeps the library from logging the notice again.
        click.echo(LOCAL_NOTICE, err=True)
    return default


# -- conversations ---------------------------------------------------------------------------


def open_conversation(
    client: Client,
    model: str | None,
    system: str | None,
    *,
    continue_last: bool,
    cid: str | None,
    persist: bool,
) -> Conversation:
    """A new conversation, or the stored one that -c or --cid names.

    A continued conversation keeps its model and system prompt unless -m / -s is given.
    Without ``persist`` (--no-log) a stored one is read but nothing is written back.
    """
    if continue_last and cid:
        raise click.UsageError("give -c or --cid, not both")
    wanted = cid if cid else _latest_id(client) if continue_last else None
    if wanted is None:
        return client.conversation(choose_model(client, model), system=system, persist=persist)
    if not persist:
        return _read_only(client, wanted, model, system)
    conv = client.conversation(model, system=system, id=wanted)
    if not conv.resumed:
        raise click.UsageError(f"no stored conversation has the id {wanted!r}; {HOW_TO_START}")
    if conv.model is None:  # stored by a library user who named no model: use the default
        conv = client.conversation(choose_model(client, None), system=system, id=wanted)
    return conv


def _latest_id(client: Client) -> str:
    from .._store._conversations import recent_conversations

    latest = recent_conversations(client.pipeline.store(), limit=1)
    if not latest:
        raise click.UsageError(f"there is no conversation to continue yet; {HOW_TO_START}")
    return latest[0].id


def _read_only(client: Client, wanted: str, model: str | None, system: str | None) -> Conversation:
    """The stored conversation ``wanted`` as an unsaved copy: its new turns stay in memory."""
    from .._store._conversations import load_conversation

    stored = load_conversation(client.pipeline.store(), wanted)
    if stored is None:
        raise click.UsageError(f"no stored conversation has the id {wanted!r}; {HOW_TO_START}")
    conv = client.conversation(
        choose_model(client, model or stored.model),
        system=system if system is not None else stored.system,
        persist=False,
    )
    conv.append(*stored.messages)
    return conv


# -- output --------------------------------------------------------------------------------------


def _single_call(
    client: Client,
    model: str | None,
    system: str | None,
    text: str,
    params: CallParams,
    *,
    curl: bool,
    stream: bool,
) -> None:
    """--raw and --curl: one call (or its curl command) with no conversation around it."""
    chosen = choose_model(client, model)
    if system is not None:
        params = cast(CallParams, {**params, "system": system})
    if curl:
        endpoint, _ = client.resolve_model(chosen)
        request = client.http_request(chosen, text, stream=stream, **params)
        click.echo(curl_command(request, key_env=endpoint.key_env))
    else:
        click.echo(dumps(client.complete(chosen, text, **params).raw))


def _complete(conv: Conversation, text: str, params: CallParams, *, stream: bool) -> Response:
    """The whole Response, read from a stream (so it has ttft_s) or from one plain call."""
    if not stream:
        return conv.send(text, **params)
    with conv.stream(text, **params) as events:
        return events.response


def _print_text(text: str, *, markdown: bool) -> None:
    writer = answer_writer(markdown)
    writer.write(text)
    writer.end_line()


def print_stream(open_stream: Callable[[], Stream], *, markdown: bool = False) -> Response:
    """Print an answer fragment by fragment and return it.

    A failure or Ctrl-C (re-raised) keeps what was printed and ends its line; after a
    Ctrl-C with nothing printed, the line ends on stderr, below the ``^C``. With
    ``markdown`` (stdout is a terminal) the answer is rendered as it arrives.
    """
    writer = answer_writer(markdown)
    try:
        with open_stream() as events:
            for event in events:
                if isinstance(event, TextDelta | RefusalDelta):
                    writer.write(event.text)
            response = events.response
    except KeyboardInterrupt:
        if not writer.end_line():
            click.echo(err=True)
        raise
    except BaseException:
        writer.end_line()
        raise
    writer.end_line()
    if response.finish_reason == "length":
        click.echo("callm: the answer was cut off at the max_tokens limit", err=True)
    return response
