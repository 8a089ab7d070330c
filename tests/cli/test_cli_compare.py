"""``callm compare``: several models at once — side by side in a terminal, plain or JSON when
piped, and one model's error never stops the others."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pexpect
from cli_helpers import CallmProcess

from callm.testing import FakeOpenAIServer, Fault, Reply

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_piped_output_lists_each_answer_with_its_stats_and_errors(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Reply("Seven is prime."))
    result = callm_run(
        "compare", "-m", "openai/gpt-4o-mini", "-m", "local/offline", "-m", "nope/x", "A prime?"
    )

    assert result.code == 1
    sections = result.stdout.split("\n\n")
    assert [s.splitlines()[0] for s in sections] == [
        "## openai/gpt-4o-mini",
        "## local/offline",
        "## nope/x",
    ]
    assert sections[0].splitlines()[1] == "Seven is prime."
    assert re.fullmatch(
        r"\[\d+\.\d\ds · first token \d+\.\d\ds · \d+ in / \d+ out tokens · \$[\d.]+\]",
        sections[0].splitlines()[2],
    )
    assert sections[1].splitlines()[1].startswith('[offline] You said: "A prime?"')
    assert sections[2].splitlines()[1].startswith("[error: ConfigurationError: unknown provider")
    assert fake.requests[0].json["stream"] is True


def test_json_has_one_object_per_model_with_errors_as_objects(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Fault.unauthorized())
    result = callm_run(
        "compare", "--json", "-m", "openai/gpt-4o-mini", "-m", "local/offline", "-s", "Be brief.",
        "Hi",
    )  # fmt: skip

    assert result.code == 1
    first, second = json.loads(result.stdout)
    assert first["model"] == "openai/gpt-4o-mini"
    assert first["error"]["type"] == "AuthenticationError"
    assert first["error"]["status_code"] == 401
    assert second["model"] == "local/offline" and second["error"] is None
    assert second["text"].startswith("[offline]")
    assert second["usage"]["output_tokens"] > 0 and second["ttft_s"] is not None
    assert fake.requests[0].json["messages"][0] == {"role": "system", "content": "Be brief."}


def test_all_answers_ok_exits_zero(fake: FakeOpenAIServer, callm_run: CallmProcess) -> None:
    fake.queue(Reply("one"), Reply("two"))
    result = callm_run("compare", "-m", "openai/gpt-4o-mini", "-m", "openai/gpt-4o", "Count")
    assert result.code == 0, result.stderr
    answers = {line for line in result.stdout.splitlines() if line in ("one", "two")}
    assert answers == {"one", "two"}
    assert sorted(r.json["model"] for r in fake.requests) == ["gpt-4o", "gpt-4o-mini"]


def test_a_terminal_shows_the_answers_side_by_side_as_markdown(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    fake.queue(Fault.slow_first_byte(0.5, reply=Reply("A **bold** claim.")))
    child = pexpect.spawn(
        sys.executable,
        ["-m", "callm", "compare", "-m", "openai/gpt-4o-mini", "-m", "local/offline", "Hi"],
        cwd=str(tmp_path),
        env=dict(os.environ, TERM="xterm"),
        encoding="utf-8",
        dimensions=(30, 160),
        timeout=60,
    )
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    screen = ANSI.sub("", child.before)
    titles = [line for line in screen.splitlines() if "openai/gpt-4o-mini" in line]
    assert titles and "local/offline" in titles[-1]  # one row: the panels are side by side
    assert "A bold claim." in screen  # Markdown rendered: no asterisks
    assert "**bold**" not in screen.split("A bold claim.")[-1]
    assert re.search(r"first token \d+\.\d\ds", screen)


def test_a_terminal_shows_each_answer_as_it_streams_in(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    """One model stalls mid-answer: its first words are on screen, beside the other model's
    finished answer, before the rest of its own arrives."""
    words = ["Streaming ", "half", " and then", " the ending."]
    fake.queue(Fault.stall(3, 4.0, reply=Reply(chunks=words)))
    child = pexpect.spawn(
        sys.executable,
        ["-m", "callm", "compare", "-m", "openai/gpt-4o-mini", "-m", "local/offline", "Go"],
        cwd=str(tmp_path),
        env=dict(os.environ, TERM="xterm"),
        encoding="utf-8",
        dimensions=(30, 160),
        timeout=60,
    )
    child.expect_exact("Streaming half")
    shown = child.before + child.after
    child.expect(r'You said: "Go"')  # the other model, meanwhile, has answered in full
    child.expect(r"first token \d+\.\d\ds")
    shown += child.before + child.after
    assert "the ending" not in shown, "the stalled answer was shown only once complete"
    titles = [line for line in ANSI.sub("", shown).splitlines() if "openai/gpt-4o-mini" in line]
    assert titles and "local/offline" in titles[-1]  # side by side while streaming
    child.expect_exact("the ending.")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    final = ANSI.sub("", child.before)
    assert final.count("first token") >= 2  # both panels closed with their stats
