"""Command-line options, in process with click's CliRunner against a fake server."""

from __future__ import annotations

from typing import Any

import pytest
from cli_helpers import sent_body
from click.testing import CliRunner

from callm.cli import cli
from callm.cli._options import OptionError, parse_options, parse_value
from callm.testing import FakeOpenAIServer, Reply

MODEL = "openai/gpt-4o-mini"


def run(*args: str, input: str = "") -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def sent(fake: FakeOpenAIServer, *args: str) -> dict[str, Any]:
    """The JSON body the fake received for ``callm -m MODEL *args "hi"``."""
    fake.queue(Reply("ok"))
    code, _, stderr = run("-m", MODEL, *args, "hi")
    assert (code, stderr) == (0, "")
    return sent_body(fake, -1)


# --- parse_options: pure ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("0.2", 0.2),
        ("7", 7),
        ("true", True),
        ('{"a": [1]}', {"a": [1]}),
        ("low", "low"),
        ("", ""),
        ("a=b", "a=b"),
    ],
)
def test_values_are_json_when_they_parse(raw: str, value: object) -> None:
    assert parse_value(raw) == value


def test_known_parameters_are_checked_and_the_rest_go_to_the_body() -> None:
    params, extra = parse_options(
        [
            "temperature=1",
            "max_tokens=20",
            "stop=END",
            "user=42",
            "response_format=json_object",
            "tool_choice=auto",
            "reasoning_effort=low",
            'metadata={"k": "v"}',
        ]
    )
    assert params == {
        "temperature": 1.0,
        "max_tokens": 20,
        "stop": "END",
        "user": "42",
        "response_format": {"type": "json_object"},
        "tool_choice": "auto",
    }
    assert extra == {"reasoning_effort": "low", "metadata": {"k": "v"}}


def test_stop_takes_a_json_list() -> None:
    assert parse_options(['stop=["a", "b"]'])[0] == {"stop": ["a", "b"]}


@pytest.mark.parametrize(
    "item",
    ["temperature", "=1", "max_tokens=lots", "max_tokens=true", "seed=1.5", "top_p=high"],
)
def test_bad_options_are_refused(item: str) -> None:
    with pytest.raises(OptionError):
        parse_options([item])


def test_a_repeated_option_is_refused() -> None:
    with pytest.raises(OptionError, match="more than once"):
        parse_options(["seed=1", "seed=2"])


# --- the prompt command, in process --------------------------------------------------------


def test_options_reach_the_request_body(fake: FakeOpenAIServer) -> None:
    body = sent(
        fake,
        "-s",
        "Be brief.",
        "--max-tokens",
        "50",
        "--temperature",
        "0.5",
        "-o",
        "seed=7",
        "-o",
        'stop=["x"]',
        "-o",
        "reasoning_effort=low",
    )
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert body["max_completion_tokens"] == 50
    assert (body["temperature"], body["seed"], body["stop"]) == (0.5, 7, ["x"])
    assert body["reasoning_effort"] == "low"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "temperature"], "KEY=VALUE"),
        (["-o", "max_tokens=many"], "whole number"),
        (["--max-tokens", "5", "-o", "max_tokens=6"], "give max_tokens once"),
        (["--json", "--raw"], "choose one of --json, --raw and --curl"),
        (["--max-tokens", "0"], "--max-tokens"),
        (["--nonsense"], "No such option"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], message: str) -> None:
    code, stdout, stderr = run("-m", "local/offline", *args, "hi")
    assert (code, stdout) == (2, "")
    [line] = stderr.splitlines()
    assert line.startswith("callm: error: ")
    assert message in line
    assert line.endswith("(see 'callm --help')")


def test_help_shows_the_prompt_usage_and_the_commands() -> None:
    code, stdout, _ = run("--help")
    assert code == 0
    assert "callm [OPTIONS] [PROMPT]" in stdout
    assert "callm COMMAND [ARGS]..." in stdout
    for text in ("--model", "--curl", "models", "keys", "Commands:"):
        assert text in stdout


def test_a_subcommand_name_after_double_dash_is_a_prompt(fake: FakeOpenAIServer) -> None:
    fake.queue(Reply("ok"))
    code, stdout, _ = run("-m", MODEL, "--", "models")
    assert (code, stdout) == (0, "ok\n")
    assert sent_body(fake)["messages"][0]["content"] == "models"


def test_the_version() -> None:
    code, stdout, _ = run("--version")
    assert code == 0
    assert stdout.startswith("callm, version ")
