"""``callm serve keys create|list|show|update|revoke`` and ``callm serve usage``: the admin
API of a running gateway, from the shell.

The commands talk to the gateway over HTTP (``--url``, default ``$CALLM_GATEWAY_URL`` or
http://127.0.0.1:4000) with ``$CALLM_MASTER_KEY``, so a key is made, changed or revoked
where the gateway keeps its state and takes effect at once. A new key is printed once, on
stdout (alone, so ``KEY=$(callm serve keys create …)`` works); it cannot be shown again.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import click

from ._group import CLIError, CLIUsageError, debug_option
from ._output import dumps

URL_ENV = "CALLM_GATEWAY_URL"
MASTER_ENV = "CALLM_MASTER_KEY"
DEFAULT_URL = "http://127.0.0.1:4000"
F = TypeVar("F", bound=Callable[..., Any])


def _url_option(fn: F) -> F:
    return click.option(
        "--url",
        envvar=URL_ENV,
        default=DEFAULT_URL,
        show_default=True,
        help=f"The gateway's address (or ${URL_ENV}).",
    )(fn)


def _json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")(fn)


def _limit_options(fn: F) -> F:
    """The options of a key's limits (create and update)."""
    options = [
        click.option("--name", default=None, help="A name to recognise the key by."),
        click.option(
            "--models",
            "models",
            multiple=True,
            help="A model or glob the key may call ('openai/*'); repeat for more. Default: any.",
        ),
        click.option("--budget", default=None, help="Spend limit in USD, e.g. 10 or 2.50."),
        click.option("--budget-period", default=None, help="The budget resets: 30d, 7d, 24h …"),
        click.option("--rpm", type=int, default=None, help="Requests a minute."),
        click.option("--tpm", type=int, default=None, help="Tokens a minute."),
        click.option("--max-parallel", type=int, default=None, help="Requests in flight."),
        click.option("--expires", default=None, help="When the key stops working (ISO 8601, UTC)."),
        click.option(
            "--unknown-price",
            type=click.Choice(["refuse", "tokens_only"]),
            default=None,
            help="With a budget, a model of unknown price is refused (default) or counted "
            "in tokens only.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _limits(options: dict[str, Any]) -> dict[str, Any]:
    """The admin API body for the options given (those left out are not sent)."""
    names = {
        "name": "name",
        "budget": "budget_usd",
        "budget_period": "budget_period",
        "rpm": "rpm",
        "tpm": "tpm",
        "max_parallel": "max_parallel",
        "expires": "expires_at",
        "unknown_price": "unknown_price",
    }
    body = {field: options[option] for option, field in names.items() if options[option]}
    if options["models"]:
        body["models"] = list(options["models"])
    return body


def _master_key() -> str:
    key = os.environ.get(MASTER_ENV)
    if not key:
        raise CLIUsageError(
            f"set {MASTER_ENV} to the gateway's master key: the admin API answers only to it"
        )
    return key


def admin(url: str, method: str, path: str, body: Any = None) -> Any:
    """One admin API call; its JSON answer, or a CLIError saying what the gateway said."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url.rstrip("/") + path, data=data, method=method)
    request.add_header("authorization", f"Bearer {_master_key()}")
    request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        raise CLIError(f"the gateway answered {exc.code}: {_message(exc.read())}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CLIError(
            f"could not reach the gateway at {url} ({reason}): is `callm serve` running "
            f"there? (--url or ${URL_ENV})"
        ) from None


def _message(raw: bytes) -> str:
    try:
        error = json.loads(raw).get("error", {})
        return str(error.get("message") or error)
    except (ValueError, AttributeError):
        return raw.decode(errors="replace")[:300]


@click.group("keys")
def gateway_keys_group() -> None:
    """Make, list, change and revoke the gateway's virtual keys (needs CALLM_MASTER_KEY).

    \b
    Examples:
      callm serve keys create --name "web app" --models 'openai/*' --budget 10
      callm serve keys list
      callm serve keys update key_… --rpm 120
      callm serve keys revoke key_…
    """


@gateway_keys_group.command("create")
@_limit_options
@_url_option
@_json_option
@debug_option
def create_key(url: str, as_json: bool, **options: Any) -> None:
    """Make a virtual key and print it (once: only its id and prefix are kept).

    \b
    Examples:
      callm serve keys create --name "web app" --models 'openai/*' --models 'anthropic/*'
      callm serve keys create --name batch --rpm 60 --tpm 100000 --max-parallel 4
      callm serve keys create --name trial --budget 5 --budget-period 30d --json | jq -r .key
    """
    made = admin(url, "POST", "/admin/keys", _limits(options))
    if as_json:
        click.echo(dumps(made))
    else:
        click.echo(made["key"])
    click.echo(
        f"Made key {made['id']} ({made['prefix']}…). Keep it now: it is not shown again.",
        err=True,
    )


@gateway_keys_group.command("list")
@_url_option
@_json_option
@debug_option
def list_keys(url: str, as_json: bool) -> None:
    """The live keys: id, name, prefix, models, limits and spend (never a key).

    \b
    Examples:
      callm serve keys list
      callm serve keys list --url http://gw.internal:4000 --json | jq '.[].spend_usd'
    """
    keys = admin(url, "GET", "/admin/keys")["data"]
    if as_json:
        click.echo(dumps(keys))
        return
    if not keys:
        click.echo("No keys yet: callm serve keys create --name NAME", err=True)
        return
    for key in keys:
        click.echo(_key_line(key))


def _key_line(key: dict[str, Any]) -> str:
    budget = f"${key['spend_usd']}" + (f"/${key['budget_usd']}" if key["budget_usd"] else "")
    if key.get("budget_period"):
        budget += f" per {key['budget_period']}"
    limits = [f"{name} {key[name]}" for name in ("rpm", "tpm", "max_parallel") if key.get(name)]
    parts = [
        key["id"],
        key["prefix"] + "…",
        key["name"] or "-",
        ",".join(key["models"]),
        budget,
        *limits,
    ]
    return "  ".join(parts)


@gateway_keys_group.command("show")
@click.argument("key_id")
@_url_option
@debug_option
def show_key(key_id: str, url: str) -> None:
    """One key's limits, spend and usage, as JSON.

    \b
    Example:
      callm serve keys show key_… | jq .spend_usd
    """
    click.echo(dumps(admin(url, "GET", f"/admin/keys/{_safe(key_id)}")))


@gateway_keys_group.command("update")
@click.argument("key_id")
@_limit_options
@_url_option
@debug_option
def update_key(key_id: str, url: str, **options: Any) -> None:
    """Change a key's name or limits (in effect for its next request).

    \b
    Examples:
      callm serve keys update key_… --rpm 120 --budget 20
      callm serve keys update key_… --models 'anthropic/*'
    """
    body = _limits(options)
    if not body:
        raise CLIUsageError("nothing to change: give --name, --models, --budget, --rpm …")
    changed = admin(url, "PATCH", f"/admin/keys/{_safe(key_id)}", body)
    click.echo(_key_line(changed))


@gateway_keys_group.command("revoke")
@click.argument("key_id")
@_url_option
@debug_option
def revoke_key(key_id: str, url: str) -> None:
    """Revoke a key at once: its next request is refused.

    \b
    Example:
      callm serve keys revoke key_…
    """
    admin(url, "DELETE", f"/admin/keys/{_safe(key_id)}")
    click.echo(f"Revoked {key_id}", err=True)


@click.command("usage")
@click.option("--since", default=None, help="The first day to show (YYYY-MM-DD).")
@_url_option
@_json_option
@debug_option
def gateway_usage(since: str | None, url: str, as_json: bool) -> None:
    """Calls, tokens and cost by day, key and model.

    \b
    Examples:
      callm serve usage
      callm serve usage --since 2026-01-01 --json | jq '.[] | select(.model == "openai/gpt-4o")'
    """
    query = f"?since={quote(since)}" if since else ""
    rows = admin(url, "GET", f"/admin/usage{query}")["data"]
    if as_json:
        click.echo(dumps(rows))
        return
    for row in rows:
        click.echo(
            f"{row['day']}  {row['key_id']}  {row['model']}  {row['calls']} calls  "
            f"{row['input_tokens']}+{row['output_tokens']} tokens  ${row['cost_usd']}"
        )


def _safe(key_id: str) -> str:
    """A key id as a path segment: it cannot reach another admin endpoint."""
    return quote(key_id, safe="")
