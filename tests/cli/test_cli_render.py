"""Output for people: Markdown rendered on a terminal, plain text when piped; -u/--usage."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pexpect
import pytest
from cli_helpers import CallmProcess

from callm.testing import FakeOpenAIServer, Reply

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
MARKDOWN = "# Plan\n\nSome **bold** words.\n\n- first item\n- second item\n\n```\ncode here\n```"


def test_piped_output_is_the_markdown_text_itself(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Reply(MARKDOWN))
    result = callm_run("-m", "openai/gpt-4o-mini", "plan")
    assert (result.code, result.stdout) == (0, MARKDOWN + "\n")


def test_a_terminal_gets_rendered_markdown(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    fake.queue(Reply(MARKDOWN))
    child = pexpect.spawn(
        sys.executable,
        ["-m", "callm", "-m", "openai/gpt-4o-mini", "plan"],
        cwd=str(tmp_path),
        env=dict(os.environ, TERM="xterm"),
        encoding="utf-8",
        dimensions=(40, 100),
        timeout=30,
    )
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    screen = ANSI.sub("", child.before)
    assert "Some bold words." in screen and "**" not in screen
    assert "• first item" in screen and "• second item" in screen
    assert "# Plan" not in screen and "Plan" in screen
    assert "code here" in screen and "```" not in screen


def test_usage_prints_tokens_cost_and_timing_after_the_answer(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Reply("Hi there."), Reply("Again."))
    streamed = callm_run("-u", "-m", "openai/gpt-4o-mini", "hello")
    assert streamed.stdout == "Hi there.\n"
    assert re.fullmatch(
        r"\d+ in / \d+ out tokens · \$[\d.]+ · \d+\.\d\ds · first token \d+\.\d\ds\n",
        streamed.stderr,
    ), streamed.stderr
    whole = callm_run("--usage", "--no-stream", "-m", "openai/gpt-4o-mini", "hello")
    assert whole.stdout == "Again.\n"
    assert re.fullmatch(r"\d+ in / \d+ out tokens · \$[\d.]+ · \d+\.\d\ds\n", whole.stderr)


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "local/offline", "-u", "hi"],
        ["compare", "-m", "local/offline", "-m", "local/offline", "hi"],
        ["logs"],
        ["usage"],
        ["models", "local"],
    ],
    ids=lambda a: a[0] if a[0] != "-m" else "prompt",
)
def test_piped_output_never_loads_rich(
    callm_run: CallmProcess, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """rich (and the Markdown parser under it) is imported only for a terminal."""
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")  # every import, listed on stderr
    result = callm_run(*args)
    assert result.code == 0, result.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.error_lines if "|" in line]
    assert "callm.cli" in imported  # the listing is there
    assert not [m for m in imported if m.split(".")[0] in ("rich", "markdown_it", "pygments")]
