"""Every command explains itself with examples, and a usage error is one line and exit 2."""

from __future__ import annotations

import click
import pytest
from cli_helpers import CallmProcess
from click.testing import CliRunner

from callm.cli import cli


def every_command(command: click.Command, path: tuple[str, ...] = ()) -> list[list[str]]:
    """The path of every command and group under ``command``, itself included."""
    paths = [list(path)]
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            paths += every_command(sub, (*path, name))
    return paths


COMMANDS = every_command(cli)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "callm")
def test_help_has_examples(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"], prog_name="callm")
    assert result.exit_code == 0
    assert "Example" in result.output
    examples = result.output.split("Example", 1)[1]
    assert "callm " in examples


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "hi"], "Missing option '-m' / '--model'"),
        (["batch", "in.jsonl"], "Missing option '-o' / '--output'"),
        (["logs", "-n", "many"], "'many' is not a valid integer"),
        (["batch", "in.jsonl", "-o", "o.jsonl", "--no-wait"], "--no-wait goes with"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(
    callm_run: CallmProcess, args: list[str], message: str
) -> None:
    result = callm_run(*args)
    assert result.code == 2
    [line] = result.error_lines
    assert line.startswith("callm: error: ") and message in line
