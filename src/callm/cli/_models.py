"""``callm models [PROVIDER]``: the models a provider lists, with context window and prices."""

from __future__ import annotations

from typing import Any

import click

from .._client import Client
from .._config.settings import LOCAL_NOTICE, split_model
from .._core.types import ModelInfo
from ._group import debug_option
from ._model_facts import ModelFacts, model_facts, price_text, window_text
from ._output import dumps

_HEADINGS = ("model", "context", "input/Mtok", "output/Mtok")


@click.command("models")
@click.argument("provider", required=False)
@click.option("-q", "--quiet", is_flag=True, help="Print the model ids only, one a line.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print id, provider, created, owned_by, context window and prices as JSON.",
)
@debug_option
def models_command(provider: str | None, quiet: bool, as_json: bool) -> None:
    """List the models PROVIDER offers, with each one's context window and its prices in
    USD per million input and output tokens where genai-prices knows them ("?" where not).

    PROVIDER defaults to the provider of the default model (local when no key is set).

    \b
    Examples:
      callm models openai
      callm models anthropic -q | grep haiku
      callm models gemini --json | jq '.[] | select(.context_window > 500000) | .id'
    """
    with Client() as client:
        name = provider or _default_provider(client)
        models = client.models(name)
        protocol = client.settings.spec(name).protocol
    facts = [model_facts(m.provider or name, m.id, protocol) for m in models]
    if as_json:
        click.echo(dumps([_json(m, f) for m, f in zip(models, facts, strict=True)]))
    elif quiet:
        for model in models:
            click.echo(model.id)
    else:
        click.echo(_table(models, facts))


def _table(models: list[ModelInfo], facts: list[ModelFacts]) -> str:
    rows = [_HEADINGS] + [
        (m.id, window_text(f.context_window), price_text(f.input_per_mtok),
         price_text(f.output_per_mtok))
        for m, f in zip(models, facts, strict=True)
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADINGS))]
    lines = [_line(row, widths) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _line(row: tuple[str, ...], widths: list[int]) -> str:
    numbers = (cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))
    return "  ".join([row[0].ljust(widths[0]), *numbers])


def _json(model: ModelInfo, facts: ModelFacts) -> dict[str, Any]:
    return {
        "id": model.id,
        "provider": model.provider,
        "created": model.created,
        "owned_by": model.owned_by,
        "context_window": facts.context_window,
        "input_per_mtok": None if facts.input_per_mtok is None else str(facts.input_per_mtok),
        "output_per_mtok": None if facts.output_per_mtok is None else str(facts.output_per_mtok),
    }


def _default_provider(client: Client) -> str:
    model, offline = client.settings.default_model()
    if offline:
        click.echo(LOCAL_NOTICE, err=True)
    return split_model(model)[0]
