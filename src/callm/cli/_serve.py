"""``callm serve``: the gateway (OpenAI, Anthropic and Gemini endpoints, virtual keys), and
``callm serve keys …`` / ``callm serve usage`` to administer a running one."""

from __future__ import annotations

from pathlib import Path

import click

from .._core.errors import ConfigurationError
from ._gateway_keys import gateway_keys_group, gateway_usage
from ._group import CLIUsageError


@click.group("serve", invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
# A range, not int: a port past 65535 made uvloop wait forever instead of failing.
@click.option(
    "--port",
    default=4000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on.",
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML file: models, aliases, fallbacks, groups, limits (never keys).",
)
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(min=1), help="Worker processes."
)
@click.pass_context
def serve_command(
    ctx: click.Context, host: str, port: int, config: Path | None, workers: int
) -> None:
    """Run the gateway: callers use virtual keys, the gateway holds the provider keys.

    CALLM_MASTER_KEY administers keys: `callm serve keys create --name app --models
    'openai/*' --budget 10` against a running gateway (or POST /admin/keys). Provider keys
    come from the usual environment variables, .env or `callm keys set`. With
    CALLM_DATABASE_URL (PostgreSQL) and CALLM_REDIS_URL, several gateways share keys,
    spend and exact limits (a fleet).

    \b
    Examples:
      callm serve                                  on 127.0.0.1:4000
      callm serve --config callm.toml --port 8080
      CALLM_MASTER_KEY=… callm serve --host 0.0.0.0 --workers 4
      callm serve keys create --name app --rpm 60 --budget 10
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..server import serve

    try:
        serve(host=host, port=port, config=config, workers=workers)
    except ConfigurationError as exc:
        raise CLIUsageError(str(exc)) from None


serve_command.add_command(gateway_keys_group)
serve_command.add_command(gateway_usage)
