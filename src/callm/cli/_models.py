"""``callm models [PROVIDER]``: the models a provider lists."""

from __future__ import annotations

import click

from .._client import Client
from .._config.settings import LOCAL_NOTICE, split_model
from ._group import debug_option
from ._output import dumps


@click.command("models")
@click.argument("provider", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print id, provider, created, owned_by.")
@debug_option
def models_command(provider: str | None, as_json: bool) -> None:
    """List the models PROVIDER offers, one id per line.

    PROVIDER defaults to the provider of the default model (local when no key is set).
    """
    with Client() as client:
        models = client.models(provider or _default_provider(client))
    if as_json:
        rows = [
            {"id": m.id, "provider": m.provider, "created": m.created, "owned_by": m.owned_by}
            for m in models
        ]
        click.echo(dumps(rows))
    else:
        for model in models:
            click.echo(model.id)


def _default_provider(client: Client) -> str:
    model, offline = client.settings.default_model()
    if offline:
        click.echo(LOCAL_NOTICE, err=True)
    return split_model(model)[0]
