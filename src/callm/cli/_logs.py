"""``callm logs``: the call log — search it, filter it, delete from it, turn it off and on."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click

from .._config.folders import private_folder
from .._config.settings import LOGS_OFF_FILE, Settings
from .._store._search import ANY_ERROR, CallFilter, count_calls, delete_calls, find_calls
from ._calldb import empty_log_message, existing_store, log_state
from ._group import CLIUsageError, DefaultGroup, debug_option
from ._logview import record_json, render_record
from ._output import dumps
from ._usage import moment_option, since_option

_ALL = 2**63 - 1  # SQLite's largest integer: "-n 0" means no limit
F = TypeVar("F", bound=Callable[..., Any])

logs_group = DefaultGroup(
    "logs",
    default_command="list",
    default_usage="[OPTIONS]",
    short_help="Search and show the call log; rm, off, on.",
    help="""Every call callm makes is logged to callm.db in CALLM_HOME: prompt, reply, tokens,
    cost, latency, status. `callm logs` shows the latest calls (the `list` command);
    `callm logs rm`, `callm logs off` and `callm logs on` manage the log.

    \b
    Examples:
      callm logs                       the last 3 calls
      callm logs -n 20 -q "invoice*"   the last 20 calls that mention a word starting "invoice"
      callm logs --status error --since 24h --json
      callm logs -m openai/gpt-4o-mini --cid 0190c3…   one conversation's calls to one model
      callm logs rm --before 30d       delete calls older than 30 days
      callm logs off                   stop logging (CALLM_LOG=1 still turns it on per shell)
    """,
)


def filter_options(command: F) -> F:
    """The options that pick calls, shared by ``logs list`` and ``logs rm``."""
    options = [
        click.option(
            "-q",
            "--query",
            metavar="WORDS",
            help='Full-text search of prompts and replies: every word must appear; "word*" '
            "matches words that begin so.",
        ),
        click.option("-m", "--model", metavar="[PROVIDER/]MODEL", help="Only calls to this model."),
        click.option("--provider", metavar="NAME", help="Only calls to this provider."),
        click.option("--cid", metavar="ID", help="Only the calls of this conversation."),
        click.option(
            "--status",
            metavar="ok|error|cancelled|ERROR_NAME",
            callback=_check_status,
            help="ok, error (any failure), cancelled or an error name such as RateLimitError.",
        ),
        since_option("Only calls since then: 2025-01-31, 24h, 7d."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


_STATUSES = ("ok", ANY_ERROR, "cancelled")


def _check_status(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A status the log can hold: a typo would otherwise quietly match no call."""
    if value is None or value in _STATUSES or (value[:1].isupper() and value.isidentifier()):
        return value
    raise click.BadParameter(
        f"{value!r} is not a status: ok, error, cancelled or an error's class name such as "
        "RateLimitError"
    )


def _selection(
    *,
    query: str | None,
    model: str | None,
    provider: str | None,
    cid: str | None,
    status: str | None,
    since: datetime | None,
    **extra: Any,
) -> CallFilter:
    return CallFilter(
        query=query,
        model=model,
        provider=provider,
        conversation_id=cid,
        status=status,
        since=since,
        **extra,
    )


@logs_group.command("list")
@click.option(
    "-n",
    "--count",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="How many of the latest matching calls to show; 0 shows them all.",
)
@filter_options
@click.option("--json", "as_json", is_flag=True, help="Print the records, every field, as JSON.")
@debug_option
def list_calls(count: int, as_json: bool, **filters: Any) -> None:
    """Show the latest calls, oldest first: prompt, reply, tokens, cost and latency.

    `callm --no-log "prompt"` leaves one call out; `callm logs off` (or CALLM_LOG=0) turns
    logging off altogether.

    \b
    Examples:
      callm logs list -n 10 --provider anthropic
      callm logs -q "refund policy" -m openai/gpt-4o-mini --json | jq '.[].response_text'
    """
    settings = Settings()
    selection = _selection(**filters)
    with existing_store(settings) as store:
        records = [] if store is None else find_calls(store, selection, count or _ALL)
    records.reverse()  # oldest first, so the newest call ends up next to the prompt
    if as_json:
        click.echo(dumps([record_json(r) for r in records]))
    elif not records:
        click.echo(empty_log_message(settings, "calls logged" + _describe(selection)))
    else:
        click.echo("\n\n".join(render_record(r) for r in records))


def _describe(selection: CallFilter) -> str:
    """`` matching …`` for the empty-log message, naming the filters given."""
    named = [
        f"{label} {value}"
        for label, value in (
            ("for", selection.model),
            ("to provider", selection.provider),
            ("in conversation", selection.conversation_id),
            ("with status", selection.status),
            ("matching", None if selection.query is None else repr(selection.query)),
        )
        if value
    ]
    if selection.since is not None:
        named.append(f"since {selection.since.isoformat(timespec='seconds')}")
    return (" " + " ".join(named)) if named else ""


@logs_group.command("rm")
@click.argument("ids", nargs=-1, metavar="[ID]...")
@filter_options
@click.option(
    "--before",
    callback=moment_option,
    metavar="DATE|AGE",
    help="Only calls made before then: 2025-01-31, 30d.",
)
@click.option("--all", "everything", is_flag=True, help="Delete every call (needs no filter).")
@debug_option
def remove_calls(ids: tuple[str, ...], everything: bool, **filters: Any) -> None:
    """Delete calls from the log: the ids given (see `callm logs`), or every call the
    filters pick, or --all of them. Says how many were deleted.

    \b
    Examples:
      callm logs rm 0187f0c2a1b2c3d4e5f60718293a4b5c
      callm logs rm -q "password" --status ok
      callm logs rm --before 90d
    """
    selection = _selection(ids=ids, **filters)
    if not everything and selection.where()[0] == "1":
        raise CLIUsageError(
            "say which calls to delete: give ids, a filter (-q, -m, --before …) or --all"
        )
    settings = Settings()
    with existing_store(settings) as store:
        deleted = 0 if store is None else delete_calls(store, selection)
    click.echo(f"Deleted {deleted} call{'' if deleted == 1 else 's'} from the log.", err=True)


@logs_group.command("off")
@debug_option
def logs_off() -> None:
    """Stop logging calls (CALLM_LOG=1 in the environment still turns it on).

    \b
    Examples:
      callm logs off
      CALLM_LOG=1 callm "this one is logged all the same"
    """
    settings = Settings()
    private_folder(settings.home)
    (settings.home / LOGS_OFF_FILE).touch()
    click.echo(log_state(Settings()), err=True)


@logs_group.command("on")
@debug_option
def logs_on() -> None:
    """Log calls again (CALLM_LOG=0 in the environment still turns it off).

    \b
    Examples:
      callm logs on
      CALLM_LOG=0 callm "this one is not logged all the same"
    """
    settings = Settings()
    (settings.home / LOGS_OFF_FILE).unlink(missing_ok=True)
    click.echo(log_state(Settings()), err=True)


@logs_group.command("status")
@debug_option
def logs_status() -> None:
    """Say whether calls are logged, where, and how many are stored.

    \b
    Example:
      callm logs status
    """
    settings = Settings()
    with existing_store(settings) as store:
        stored = 0 if store is None else count_calls(store, CallFilter())
    click.echo(log_state(settings))
    click.echo(f"{stored} call{'' if stored == 1 else 's'} stored in {settings.home / 'callm.db'}.")


__all__ = ["ANY_ERROR", "logs_group"]
