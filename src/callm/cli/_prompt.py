"""``callm "prompt"``: send one prompt and print the answer as it arrives."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import cast

import click

from .._client import CallParams, Client
from .._config import LOCAL_NOTICE
from .._errors import CallmError
from .._types import RefusalDelta, Response, TextDelta
from ._curl import curl_command
from ._group import EXIT_INTERRUPTED, debug_option
from ._options import OptionError, parse_options
from ._output import LineWriter, dumps, response_json


@click.command("prompt")
@click.argument("prompt", required=False)
@click.option("-m", "--model", metavar="PROVIDER/MODEL", help="The model, e.g. openai/gpt-4o-mini.")
@click.option("-s", "--system", metavar="TEXT", help="A system prompt.")
@click.option(
    "-o",
    "--option",
    "options",
    metavar="KEY=VALUE",
    multiple=True,
    help="A request option, repeatable; VALUE is read as JSON when it parses. Known "
    "parameters (temperature, top_p, stop, seed, n, user, tool_choice, response_format, "
    "max_tokens) are checked; anything else goes into the request body as is.",
)
@click.option("--max-tokens", type=click.IntRange(min=1), help="The most tokens to generate.")
@click.option("--temperature", type=float, help="Sampling temperature, e.g. 0.2.")
@click.option("--no-stream", is_flag=True, help="Wait for the whole answer, then print it.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the normalised response as JSON: text, usage, timing, cost … (the answer "
    "is still streamed, silently, unless --no-stream is given).",
)
@click.option("--raw", is_flag=True, help="Print the provider's own JSON response (not streamed).")
@click.option(
    "--curl",
    is_flag=True,
    help="Print the equivalent curl command (streamed unless --no-stream, key redacted) "
    "instead of sending it.",
)
@click.option(
    "--no-log",
    is_flag=True,
    help="Leave this call out of the call log (`callm logs`, `callm usage`); "
    "CALLM_LOG=0 turns logging off for every call.",
)
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
    no_stream: bool,
    as_json: bool,
    raw: bool,
    curl: bool,
    no_log: bool,
) -> None:
    """Send PROMPT to a model and stream the answer to stdout.

    Text piped to stdin is added after the prompt (or is the prompt when none is given):
    `git diff | callm "review this"`. With no key configured, callm answers with its
    offline local model and says so on stderr.
    """
    _one_output(as_json=as_json, raw=raw, curl=curl)
    text = _prompt_text(prompt)
    params = _call_params(system, options, max_tokens, temperature)
    if no_log:
        params["log"] = False
    with Client() as client:
        chosen = _choose_model(client, model)
        if curl:
            click.echo(_curl(client, chosen, text, params, stream=not no_stream))
        elif raw:
            click.echo(dumps(client.complete(chosen, text, **params).raw))
        elif as_json:
            response = _complete(client, chosen, text, params, stream=not no_stream)
            click.echo(dumps(response_json(response)))
        elif no_stream:
            _print_text(client.complete(chosen, text, **params).text)
        else:
            _stream_text(client, chosen, text, params)


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
    text = stdin.read()
    return text.rstrip("\n") if text.strip() else ""


def _call_params(
    system: str | None, options: Sequence[str], max_tokens: int | None, temperature: float | None
) -> CallParams:
    """The keyword arguments of the call, from -s, -o, --max-tokens and --temperature."""
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
    if system is not None:
        params["system"] = system
    if extra_body:
        params["extra_body"] = extra_body
    return cast(CallParams, params)


def _choose_model(client: Client, model: str | None) -> str:
    """The model named with -m, else the configured default (announcing the offline model)."""
    if model:
        return model
    default, offline = client.settings.default_model()
    if offline:
        # Passing the model on explicitly keeps the library from logging the notice again.
        click.echo(LOCAL_NOTICE, err=True)
    return default


def _curl(client: Client, model: str, text: str, params: CallParams, *, stream: bool) -> str:
    endpoint, _ = client.resolve_model(model)
    request = client.http_request(model, text, stream=stream, **params)
    return curl_command(request, key_env=endpoint.key_env)


def _complete(
    client: Client, model: str, text: str, params: CallParams, *, stream: bool
) -> Response:
    """The whole Response, read from a stream (so it has ttft_s) or from one plain call."""
    if not stream:
        return client.complete(model, text, **params)
    with client.stream(model, text, **params) as events:
        return events.response


def _print_text(text: str) -> None:
    writer = LineWriter()
    writer.write(text)
    writer.end_line()


def _stream_text(client: Client, model: str, text: str, params: CallParams) -> None:
    """Print the answer fragment by fragment; on failure or Ctrl-C keep what was printed."""
    writer = LineWriter()
    try:
        with client.stream(model, text, **params) as events:
            for event in events:
                if isinstance(event, TextDelta | RefusalDelta):
                    writer.write(event.text)
            response = events.response
    except KeyboardInterrupt:
        if not writer.end_line():
            click.echo(err=True)
        raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
    except CallmError:
        writer.end_line()
        raise
    writer.end_line()
    if response.finish_reason == "length":
        click.echo("callm: the answer was cut off at the max_tokens limit", err=True)
