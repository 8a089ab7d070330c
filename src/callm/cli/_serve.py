"""``callm serve``: the gateway (OpenAI, Anthropic and Gemini endpoints, virtual keys)."""

from __future__ import annotations

from pathlib import Path

import click

from .._core.errors import ConfigurationError
from ._group import CLIUsageError


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=4000, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML file: models, aliases, fallbacks, groups, limits (never keys).",
)
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes.")
def serve_command(host: str, port: int, config: Path | None, workers: int) -> None:
    """Run the gateway: callers use virtual keys, the gateway holds the provider keys.

    CALLM_MASTER_KEY administers keys (POST /admin/keys); provider keys come from the
    usual environment variables, .env or `callm keys set`.
    """
    from ..server import serve

    try:
        serve(host=host, port=port, config=config, workers=workers)
    except ConfigurationError as exc:
        raise CLIUsageError(str(exc)) from None
