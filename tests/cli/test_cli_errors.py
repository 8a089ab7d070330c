"""Every command, driven as a real process into an error it cannot go past: one line on
stderr that says what is wrong, no traceback, and a non-zero exit (2: the command line or the
configuration; 1: the call or the data)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import CallmProcess
from test_cli_help import COMMANDS

UNKNOWN = "unknown provider 'nosuch'"

# command (as in COMMANDS) -> its arguments, the exit code, a part of the line
CASES: dict[str, tuple[list[str], int, str]] = {
    "callm": (["-m", "nosuch/x", "hi"], 2, UNKNOWN),
    "prompt": (["-m", "nosuch/x", "hi"], 2, UNKNOWN),
    "batch": (["missing.jsonl", "-o", "out.jsonl"], 2, "missing.jsonl: no such input file"),
    "batch run": (["missing.jsonl", "-o", "out.jsonl"], 2, "missing.jsonl: no such input file"),
    "batch status": (["nothing.jsonl"], 2, "no batch writes to nothing.jsonl"),
    "chat": (["-m", "nosuch/x"], 2, UNKNOWN),
    "compare": (["hi"], 2, "Missing option '-m' / '--model'"),
    "conversations": (["-n", "many"], 2, "'many' is not a valid integer"),
    "embed": (["-m", "nosuch/x", "hi"], 2, UNKNOWN),
    "keys": (["nosuch"], 2, "No such command 'nosuch'"),
    "keys list": (["extra"], 2, "unexpected extra argument (extra)"),
    "keys remove": (["openai"], 2, "no stored key for openai"),
    "keys set": (["nosuch"], 2, UNKNOWN),
    "logs": (["--since", "someday"], 2, "'someday' is not a date"),
    "logs list": (["--status", "maybe"], 2, "'maybe' is not a status: ok, error, cancelled"),
    "logs off": (["extra"], 2, "unexpected extra argument (extra)"),
    "logs on": (["extra"], 2, "unexpected extra argument (extra)"),
    "logs rm": ([], 2, "say which calls to delete"),
    "logs status": (["extra"], 2, "unexpected extra argument (extra)"),
    "models": (["nosuch"], 2, UNKNOWN),
    "serve": (["--port", "99999999"], 2, "99999999 is not in the range"),
    "serve keys": (["nosuch"], 2, "No such command 'nosuch'"),
    "serve keys create": (["--name", "app"], 2, "set CALLM_MASTER_KEY"),
    "serve keys list": ([], 2, "set CALLM_MASTER_KEY"),
    "serve keys revoke": (["key_x"], 2, "set CALLM_MASTER_KEY"),
    "serve keys show": (["key_x"], 2, "set CALLM_MASTER_KEY"),
    "serve keys update": (["key_x", "--rpm", "3"], 2, "set CALLM_MASTER_KEY"),
    "serve usage": ([], 2, "set CALLM_MASTER_KEY"),
    "usage": (["--by", "week"], 2, "'week' is not one of 'day', 'model', 'provider'"),
}


def test_every_command_has_a_case() -> None:
    assert sorted(CASES) == sorted(" ".join(c) or "callm" for c in COMMANDS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_error_is_one_clear_line_and_a_non_zero_exit(callm_run: CallmProcess, name: str) -> None:
    args, code, message = CASES[name]
    command = [] if name == "callm" else name.split()
    result = callm_run(*command, *args)
    assert result.code == code, result.stderr
    assert len(result.error_lines) == 1, result.stderr
    [line] = result.error_lines
    assert line.startswith("callm: error: ") and message in line, line
    assert result.stdout == ""


def test_a_batch_whose_every_line_fails_exits_1_with_its_summary(
    callm_run: CallmProcess, tmp_path: Path
) -> None:
    (tmp_path / "in.jsonl").write_text('{"prompt": "hi", "model": "nosuch/x"}\nnot json\n')
    result = callm_run("batch", "in.jsonl", "-o", "out.jsonl")
    assert result.code == 1
    [line] = result.error_lines
    assert line.startswith("callm batch finished: 0/2 answered, 2 failed"), line
    assert "Traceback" not in result.stderr


def test_a_compare_whose_every_model_fails_exits_1_with_each_error(
    callm_run: CallmProcess,
) -> None:
    result = callm_run("compare", "-m", "nosuch/x", "-m", "nosuch/y", "hi")
    assert result.code == 1
    assert result.stdout.count("[error: ConfigurationError: " + UNKNOWN) == 2
    assert "Traceback" not in result.stdout + result.stderr
