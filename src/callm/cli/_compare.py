"""``callm compare -m A -m B "prompt"``: one request to several models at once.

On a terminal the answers stream in side by side (rich, loaded only then), each column
closed by its latency, time to first token, tokens and cost, or its error; piped, each
answer is printed in turn once all are in; ``--json`` gives one object per model. A model
that fails shows its error and the others carry on; the exit status is then 1.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from .._core.errors import APIError, CallmError
from .._core.types import RefusalDelta, TextDelta
from ._answer import Answer
from ._group import EXIT_API_ERROR, debug_option
from ._output import dumps, response_json
from ._prompt import (
    call_params,
    max_tokens_option,
    no_log_option,
    options_option,
    system_option,
    temperature_option,
    timeout_option,
)

if TYPE_CHECKING:
    from .._client import AsyncClient, CallParams


@click.command("compare", short_help="Send one prompt to several models, side by side.")
@click.argument("prompt", required=False)
@click.option(
    "-m",
    "--model",
    "models",
    metavar="PROVIDER/MODEL",
    multiple=True,
    required=True,
    help="A model to ask; give -m once per model (two or more to compare).",
)
@system_option
@options_option
@max_tokens_option
@temperature_option
@timeout_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per model.")
@no_log_option
@debug_option
def compare_command(
    *,
    prompt: str | None,
    models: tuple[str, ...],
    system: str | None,
    options: tuple[str, ...],
    max_tokens: int | None,
    temperature: float | None,
    timeout: float | None,
    as_json: bool,
    no_log: bool,
) -> None:
    """Send PROMPT to every model given with -m, all at once, and show the answers.

    On a terminal the answers stream in side by side, each with its latency, time to
    first token, tokens and cost. Piped, each answer is printed under a `## model` line
    once all are in. A model that fails shows its error; the others go on (exit status 1).

    \b
    Examples:
      callm compare -m openai/gpt-4o-mini -m anthropic/claude-haiku-4-5 "Name a prime"
      git diff | callm compare -m openai/gpt-4o -m gemini/gemini-2.5-flash "review this"
      callm compare -m openai/gpt-4o-mini -m groq/llama-3.1-8b-instant --json "hi" | jq .
    """
    from ._prompt import _prompt_text

    text = _prompt_text(prompt)
    params = call_params(options, max_tokens, temperature, no_log=no_log, timeout=timeout)
    if system is not None:
        params["system"] = system
    answers = [Answer(model) for model in dict.fromkeys(models)]
    live = not as_json and sys.stdout.isatty()
    asyncio.run(_ask_all(answers, text, params, live=live))
    if as_json:
        click.echo(dumps([answer_json(a) for a in answers]))
    elif not live:
        click.echo("\n\n".join(plain(a) for a in answers))
    if any(a.error is not None for a in answers):
        raise click.exceptions.Exit(EXIT_API_ERROR)


async def _ask_all(answers: list[Answer], text: str, params: CallParams, *, live: bool) -> None:
    from .._client import AsyncClient

    async with AsyncClient() as client:
        asks = [_ask(client, a, text, params) for a in answers]
        if not live:
            await asyncio.gather(*asks)
            return
        from ._compare_view import live_view

        with live_view(answers):
            await asyncio.gather(*asks)


async def _ask(client: AsyncClient, answer: Answer, text: str, params: CallParams) -> None:
    """Stream one model's answer into ``answer``; an error ends it, never the others."""
    try:
        stream = await client.stream(answer.model, text, **params)
        async with stream:
            async for event in stream:
                if isinstance(event, TextDelta | RefusalDelta) and event.text:
                    if answer.ttft_s is None:
                        answer.ttft_s = time.monotonic() - answer.started
                    answer.text += event.text
            answer.response = stream.response
    except CallmError as exc:
        answer.error = exc


def plain(answer: Answer) -> str:
    """One answer for a pipe: a ``## model`` line, the text, the stats line."""
    body = answer.text.rstrip("\n")
    lines = [f"## {answer.model}"]
    if body:
        lines.append(body)
    lines.append(f"[{answer.stats()}]")
    return "\n".join(lines)


def answer_json(answer: Answer) -> dict[str, Any]:
    """One model's answer as JSON: the response fields, or an error object."""
    if answer.response is not None:
        return {**response_json(answer.response), "model": answer.model, "error": None}
    error = answer.error
    status = error.status_code if isinstance(error, APIError) else None
    return {
        "model": answer.model,
        "text": answer.text,
        "error": {"type": type(error).__name__, "message": str(error), "status_code": status},
    }


__all__ = ["Answer", "compare_command"]
