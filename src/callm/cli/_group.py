"""The ``callm`` command group: a default command, one-line errors and exit codes.

Exit codes: 0 ok, 1 an API error (the provider failed or could not be reached), 2 a usage
or configuration error (bad options, unknown provider, missing key), 130 interrupted.
"""

from __future__ import annotations

import errno
import logging
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from .._core.errors import APIError, CallmError

EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_DEBUG = "callm.debug"
F = TypeVar("F", bound=Callable[..., Any])


class CLIError(click.ClickException):
    """A failure shown as the single line ``callm: error: <message>``; exits 1."""

    exit_code = EXIT_API_ERROR

    def show(self, file: Any = None) -> None:
        click.echo(f"callm: error: {self.format_message()}", err=True)


class CLIUsageError(CLIError):
    """A usage or configuration failure; exits 2."""

    exit_code = EXIT_USAGE


class DefaultGroup(click.Group):
    """A group that runs ``default_command`` when the first argument is not a command name.

    ``callm "hi"`` is ``callm prompt "hi"``; ``callm models`` runs the models command;
    ``callm -- models`` sends the word "models" as a prompt.
    """

    def __init__(
        self,
        *args: Any,
        default_command: str,
        default_usage: str = "[OPTIONS] [PROMPT]",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.default_command = default_command
        self.default_usage = default_usage

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, self.default_usage)
        formatter.write_usage(ctx.command_path, "COMMAND [ARGS]...", prefix=" " * 7)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The default command's options, then the list of commands."""
        default = self.commands[self.default_command]
        default.format_options(ctx, formatter)
        self.format_commands(ctx, formatter)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command, turning every expected failure into one line and an exit code."""
        try:
            return super().invoke(ctx)
        except CallmError as exc:
            _fail(ctx, exc, CLIError if isinstance(exc, APIError) else CLIUsageError)
        except click.UsageError as exc:
            raise CLIUsageError(_usage_message(exc)) from exc
        except KeyboardInterrupt:
            click.echo(err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # click's main() quiets a closed pipe (`callm … | head`)
            _fail(ctx, exc, CLIError)


def debugging(ctx: click.Context) -> bool:
    """Whether --debug was given: tracebacks and every request are shown."""
    return bool(ctx.meta.get(_DEBUG))


def _fail(ctx: click.Context, exc: Exception, error: type[CLIError]) -> NoReturn:
    """Raise ``error`` with the message of ``exc``, after its traceback under --debug."""
    from .._store._redact import mask_keys

    if debugging(ctx):
        sys.stderr.write(mask_keys("".join(traceback.format_exc())))
    # Known keys by value and anything shaped like one: no message shows a key.
    raise error(mask_keys(str(exc))) from None


def _usage_message(exc: click.UsageError) -> str:
    return f"{exc.format_message()} (see '{_help_path(exc.ctx)} --help')"


def _help_path(ctx: click.Context | None) -> str:
    """The command whose --help explains a usage error (the top level, for the prompt)."""
    if ctx is None:
        return "callm"
    parent = ctx.parent
    if (
        parent is not None
        and isinstance(parent.command, DefaultGroup)
        and ctx.command.name == parent.command.default_command
    ):
        return parent.command_path
    return ctx.command_path


def debug_option(command: F) -> F:
    """``--debug``: full tracebacks, and callm's DEBUG log on stderr."""

    def enable(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if value:
            ctx.meta[_DEBUG] = True
            _log_to_stderr(ctx)

    return click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=enable,
        help="Show full tracebacks and callm's debug log on stderr.",
    )(command)


def _log_to_stderr(ctx: click.Context) -> None:
    logger = logging.getLogger("callm")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Scrubbing("%(asctime)s %(name)s %(levelname)s %(message)s"))
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)

    def restore() -> None:
        logger.removeHandler(handler)
        logger.setLevel(previous)

    ctx.call_on_close(restore)


class _Scrubbing(logging.Formatter):
    """Log lines with known keys and key-shaped strings masked, whoever logged them."""

    def format(self, record: logging.LogRecord) -> str:
        from .._store._redact import mask_keys

        return mask_keys(super().format(record))
