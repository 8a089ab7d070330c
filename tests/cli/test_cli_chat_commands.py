"""``callm chat`` slash commands (/model /system /reset /save /exit) and multi-line input,
piped and at a real pseudo-terminal."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pexpect
from cli_helpers import CallmProcess

from callm.testing import FakeOpenAIServer, Reply


def test_slash_commands_switch_model_and_system_save_and_exit(
    fake: FakeOpenAIServer, callm_run: CallmProcess, tmp_path: Path
) -> None:
    fake.queue(Reply("first answer"))
    script = "\n".join(
        [
            "hello",
            "/model local/offline",
            "again",
            "/system Be brief.",
            "third",
            "/save chat.md",
            "/exit",
            "never sent",
        ]
    )
    result = callm_run("chat", "-m", "openai/gpt-4o-mini", input=script + "\n")

    assert result.code == 0, result.stderr
    assert len(fake.requests) == 1  # the rest went to the offline model
    lines = result.stdout.splitlines()
    assert lines[0] == "first answer"
    assert lines[1].startswith('[offline] You said: "again"')
    assert "model: local/offline (the conversation goes on)" in result.stderr
    assert "saved 7 messages to chat.md" in result.stderr
    saved = (tmp_path / "chat.md").read_text()
    assert saved.startswith("# Chat with local/offline\n\n## system\n\nBe brief.\n")
    for text in ("hello", "first answer", "again", "third"):
        assert f"\n{text}" in saved
    assert "never sent" not in result.stdout + saved


def test_reset_starts_an_empty_conversation_and_unknown_commands_are_refused(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Reply("one"), Reply("two"))
    script = "first\n/reset\n/nonsense\nsecond\n"
    result = callm_run("chat", "-m", "openai/gpt-4o-mini", input=script)

    assert result.code == 0
    assert "callm: error: unknown command /nonsense; /help lists the commands" in result.stderr
    second = fake.requests[1].json["messages"]
    assert [m["content"] for m in second] == ["second"]  # no history after /reset


def test_a_triple_quoted_block_is_one_message(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Reply("ok"))
    result = callm_run("chat", "-m", "openai/gpt-4o-mini", input='"""\nline one\n\nline two\n"""\n')
    assert result.code == 0
    assert fake.requests[0].json["messages"][-1]["content"] == "line one\n\nline two"


def test_a_paste_at_the_terminal_is_one_message(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    """A terminal wraps a paste in bracketed-paste marks; readline takes it as one input."""
    fake.queue(Reply("Got both lines."))
    child = pexpect.spawn(
        sys.executable,
        ["-m", "callm", "chat", "-m", "openai/gpt-4o-mini"],
        cwd=str(tmp_path),
        env=dict(os.environ, TERM="xterm"),
        encoding="utf-8",
        timeout=30,
    )
    child.expect("> ")
    child.send("\x1b[200~pasted line one\npasted line two\x1b[201~\r")
    child.expect("Got both lines.")
    child.expect("> ")
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    [request] = fake.requests
    assert request.json["messages"][-1]["content"] == "pasted line one\npasted line two"


def test_slash_commands_and_a_block_typed_at_a_terminal(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    """The whole chat at a real pseudo-terminal: the prompt, /model, /system, /save,
    /reset, a triple-quoted block typed line by line, /exit."""
    fake.queue(Reply("first answer"), Reply("block received"))
    child = pexpect.spawn(
        sys.executable,
        ["-m", "callm", "chat", "-m", "openai/gpt-4o-mini"],
        cwd=str(tmp_path),
        env=dict(os.environ, TERM="xterm"),
        encoding="utf-8",
        dimensions=(40, 120),
        timeout=30,
    )

    def say(line: str, *expected: str) -> None:
        child.sendline(line)
        for text in expected:
            child.expect_exact(text)
        child.expect_exact("> ")

    child.expect_exact("callm chat with openai/gpt-4o-mini")
    child.expect_exact("> ")
    say("hello", "first answer")
    say("/model local/offline", "model: local/offline (the conversation goes on)")
    say("again", '[offline] You said: "again"')
    say("/system Be brief.", "system prompt replaced")
    say("/save chat.md", "saved 5 messages to chat.md")
    say("/reset", "new, empty conversation")
    say("/model openai/gpt-4o-mini", "model: openai/gpt-4o-mini")
    for line in ('"""', "line one", "", "line two"):
        say(line)
    say('"""', "block received")
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()

    assert child.exitstatus == 0
    first, second = (r.json["messages"] for r in fake.requests)
    assert first == [{"role": "user", "content": "hello"}]
    # After /reset: no history, the system prompt kept, the block as one message.
    assert second == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "line one\n\nline two"},
    ]
    saved = (tmp_path / "chat.md").read_text()
    assert saved.startswith("# Chat with local/offline\n\n## system\n\nBe brief.\n")
    assert "\nfirst answer\n" in saved and '[offline] You said: "again"' in saved
