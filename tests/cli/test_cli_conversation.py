"""Conversations at the command line: ``callm -c``, ``--cid``, ``--no-log`` and ``callm chat``.

Real subprocesses against the fake OpenAI server (or the offline local model); the history
a command sent is read back from the requests the server received.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest
from cli_helpers import CallmProcess, sent_body

import callm
from callm._config.settings import LOCAL_NOTICE
from callm.testing import FakeOpenAIServer, Fault, Reply

MODEL = "openai/gpt-4o-mini"
# Runs callm with Python's own SIGINT handler even if the test runner ignores SIGINT.
_WITH_SIGINT = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'callm'; from callm.cli import main; main()"
)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def system(text: str) -> dict[str, Any]:
    return {"role": "system", "content": text}


def started(callm_run: CallmProcess, *args: str) -> str:
    """Run ``callm --json ARGS`` and return the id of the conversation it stored."""
    result = callm_run("--json", *args)
    assert result.code == 0, result.stderr
    conversation_id = json.loads(result.stdout)["conversation_id"]
    assert isinstance(conversation_id, str) and conversation_id
    return conversation_id


# -- callm -c / --cid -------------------------------------------------------------------------


def test_c_sends_the_last_conversation_with_its_model_and_system_prompt(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Reply("Paris."), Reply("About two million people."))
    first = callm_run("-m", MODEL, "-s", "Be brief.", "Capital of France?")
    assert (first.code, first.stdout, first.stderr) == (0, "Paris.\n", "")
    second = callm_run("-c", "How many live there?")
    assert (second.code, second.stdout, second.stderr) == (0, "About two million people.\n", "")
    body = sent_body(fake, 1)
    assert body["model"] == "gpt-4o-mini"
    assert body["stream"] is True
    assert body["messages"] == [
        system("Be brief."),
        user("Capital of France?"),
        assistant("Paris."),
        user("How many live there?"),
    ]


def test_c_keeps_growing_the_same_conversation(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Reply("one"), Reply("two"), Reply("three"))
    conversation_id = started(callm_run, "-m", MODEL, "count")
    assert started(callm_run, "-c", "more") == conversation_id
    assert callm_run("--continue", "--no-stream", "again").stdout == "three\n"
    body = sent_body(fake, 2)
    assert "stream" not in body
    assert body["messages"] == [
        user("count"),
        assistant("one"),
        user("more"),
        assistant("two"),
        user("again"),
    ]


def test_m_and_s_override_the_continued_conversation(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Reply("first"), Reply("second"))
    assert callm_run("-m", MODEL, "-s", "Old rules.", "hi").code == 0
    assert callm_run("-c", "-m", "openai/gpt-4o", "-s", "New rules.", "next").code == 0
    body = sent_body(fake, 1)
    assert body["model"] == "gpt-4o"
    assert body["messages"] == [system("New rules."), user("hi"), assistant("first"), user("next")]


def test_cid_continues_the_conversation_it_names(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Reply("about cats"), Reply("about dogs"), Reply("more cats"))
    cats = started(callm_run, "-m", MODEL, "cats?")
    dogs = started(callm_run, "-m", MODEL, "dogs?")
    assert cats != dogs
    # -c would pick the dogs (the latest); --cid picks the cats.
    result = callm_run("--cid", cats, "tell me more")
    assert (result.code, result.stdout) == (0, "more cats\n")
    assert sent_body(fake, 2)["messages"] == [
        user("cats?"),
        assistant("about cats"),
        user("tell me more"),
    ]


def test_c_with_nothing_stored_is_a_usage_error(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    result = callm_run("-c", "and then?")
    assert (result.code, result.stdout) == (2, "")
    [line] = result.error_lines
    assert line.startswith("callm: error: there is no conversation to continue yet")
    assert 'callm "prompt"' in line and "callm chat" in line
    assert fake.requests == []


def test_an_unknown_cid_is_a_usage_error(fake: FakeOpenAIServer, callm_run: CallmProcess) -> None:
    result = callm_run("--cid", "nosuchid", "hi")
    assert result.code == 2
    [line] = result.error_lines
    assert "no stored conversation has the id 'nosuchid'" in line
    assert fake.requests == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-c", "--cid", "abc"), "give -c or --cid, not both"),
        (("-c", "--raw"), "--raw and --curl send the prompt alone"),
        (("--cid", "abc", "--curl"), "--raw and --curl send the prompt alone"),
    ],
)
def test_conflicting_options_are_usage_errors(
    fake: FakeOpenAIServer, callm_run: CallmProcess, args: tuple[str, ...], message: str
) -> None:
    result = callm_run("-m", MODEL, *args, "hi")
    assert result.code == 2
    [line] = result.error_lines
    assert message in line
    assert fake.requests == []


def test_json_gives_the_conversation_id_that_library_resumes(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Reply("stored answer"))
    conversation_id = started(callm_run, "-m", MODEL, "-s", "Rules.", "remember this")
    with callm.Client() as client:
        conv = client.conversation(id=conversation_id)
        assert conv.resumed
        assert conv.model == MODEL
        assert conv.system == "Rules."
        assert [(m.role, m.text) for m in conv.messages] == [
            ("system", "Rules."),
            ("user", "remember this"),
            ("assistant", "stored answer"),
        ]


# -- --no-log --------------------------------------------------------------------------------------


def test_no_log_stores_no_conversation(fake: FakeOpenAIServer, callm_run: CallmProcess) -> None:
    fake.queue(Reply("private answer"))
    result = callm_run("-m", MODEL, "--no-log", "--json", "a secret question")
    assert result.code == 0
    assert json.loads(result.stdout)["conversation_id"] is None
    later = callm_run("-c", "and then?")
    assert later.code == 2
    assert "no conversation to continue" in later.stderr
    assert len(fake.requests) == 1


def test_a_no_log_turn_is_left_out_of_the_stored_history(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Reply("public"), Reply("private"), Reply("public again"))
    assert callm_run("-m", MODEL, "first").code == 0
    # -c --no-log reads the stored history but writes nothing back.
    assert callm_run("-c", "--no-log", "secret").stdout == "private\n"
    assert sent_body(fake, 1)["messages"] == [user("first"), assistant("public"), user("secret")]
    assert callm_run("-c", "second").stdout == "public again\n"
    assert sent_body(fake, 2)["messages"] == [user("first"), assistant("public"), user("second")]


# -- callm chat ---------------------------------------------------------------------------


def test_chat_sends_each_line_with_the_growing_history(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Reply("Hi!"), Reply("I am fine."), Reply("Bye!"))
    result = callm_run("chat", "-m", MODEL, "-s", "Be kind.", input="hello\n\nhow are you?\nbye\n")
    assert (result.code, result.stderr) == (0, "")
    # Piped stdin: no prompt, no banner — stdout holds the answers only.
    assert result.stdout == "Hi!\nI am fine.\nBye!\n"
    assert len(fake.requests) == 3  # the empty line sent nothing
    assert [sent_body(fake, i)["messages"] for i in range(3)] == [
        [system("Be kind."), user("hello")],
        [system("Be kind."), user("hello"), assistant("Hi!"), user("how are you?")],
        [
            system("Be kind."),
            user("hello"),
            assistant("Hi!"),
            user("how are you?"),
            assistant("I am fine."),
            user("bye"),
        ],
    ]
    assert all(sent_body(fake, i)["stream"] is True for i in range(3))


@pytest.mark.parametrize("word", ["exit", "quit", "  QUIT  "])
def test_exit_or_quit_ends_the_chat(
    fake: FakeOpenAIServer, callm_run: CallmProcess, word: str
) -> None:
    fake.queue(Reply("one"), Reply("never sent"))
    result = callm_run("chat", "-m", MODEL, input=f"first\n{word}\nsecond\n")
    assert (result.code, result.stdout) == (0, "one\n")
    assert len(fake.requests) == 1


def test_chat_passes_its_options_on_every_call(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Reply("a"), Reply("b"))
    args = ("chat", "-m", MODEL, "--temperature", "0.2", "--max-tokens", "50", "-o", "seed=7")
    assert callm_run(*args, input="x\ny\n").code == 0
    for index in range(2):
        body = sent_body(fake, index)
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        assert (body["temperature"], limit, body["seed"]) == (0.2, 50, 7)


def test_a_failed_answer_is_reported_and_the_chat_goes_on(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Reply("first answer"), Fault.status(400, "That message is not allowed."))
    fake.queue(Reply("third answer"))
    result = callm_run("chat", "-m", MODEL, input="one\ntwo\nthree\n")
    assert result.code == 1  # an answer failed
    assert result.stdout == "first answer\nthird answer\n"
    [line] = result.error_lines
    assert line.startswith("callm: error: openai: HTTP 400: That message is not allowed.")
    # The failed turn left the history as it was.
    assert sent_body(fake, 2)["messages"] == [user("one"), assistant("first answer"), user("three")]


def test_chat_continues_a_prompts_conversation(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Reply("started"), Reply("continued"), Reply("from the prompt again"))
    assert callm_run("-m", MODEL, "start").code == 0
    assert callm_run("chat", "-c", input="go on\n").stdout == "continued\n"
    assert sent_body(fake, 1)["messages"] == [user("start"), assistant("started"), user("go on")]
    # The chat's turn is stored: the next `callm -c` sees it.
    assert callm_run("-c", "last").code == 0
    assert len(sent_body(fake, 2)["messages"]) == 5


def test_chat_with_an_unknown_provider_exits_2_before_reading(callm_run: CallmProcess) -> None:
    result = callm_run("chat", "-m", "nosuch/model", input="hi\n")
    assert (result.code, result.stdout) == (2, "")
    [line] = result.error_lines
    assert line.startswith("callm: error: unknown provider 'nosuch'")


def test_chat_with_a_missing_key_exits_2(callm_run: CallmProcess) -> None:
    result = callm_run("chat", "-m", MODEL, input="hi\n")
    assert result.code == 2
    [line] = result.error_lines
    assert "callm keys set openai" in line


def test_chat_c_with_nothing_stored_is_a_usage_error(callm_run: CallmProcess) -> None:
    result = callm_run("chat", "-c", input="hi\n")
    assert (result.code, result.stdout) == (2, "")
    assert "no conversation to continue" in result.stderr


def test_chat_works_offline_with_the_local_model(callm_run: CallmProcess) -> None:
    result = callm_run("chat", input="hello\nsecond line\n")
    assert result.code == 0
    assert result.stderr == LOCAL_NOTICE + "\n"
    answers = result.stdout.splitlines()
    assert len(answers) == 2
    assert answers[0].startswith('[offline] You said: "hello".')
    assert answers[1].startswith('[offline] You said: "second line".')
    # Stored: `callm -c` carries on with the same offline model, without the notice.
    more = callm_run("--json", "-c", "third")
    assert (more.code, more.stderr) == (0, "")
    data = json.loads(more.stdout)
    assert data["provider"] == "local"
    with callm.Client() as client:
        conv = client.conversation(id=data["conversation_id"])
        assert [m.text for m in conv.messages if m.role == "user"] == [
            "hello",
            "second line",
            "third",
        ]


# -- Ctrl-C and the terminal -------------------------------------------------------------


@contextmanager
def _chat_process(
    tmp_path: Path, *args: str, stdin: int = subprocess.PIPE
) -> Iterator[subprocess.Popen[bytes]]:
    """``callm chat -m MODEL ARGS`` running with real SIGINT handling; killed at the end."""
    with subprocess.Popen(
        [sys.executable, "-c", _WITH_SIGINT, "chat", "-m", MODEL, *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=dict(os.environ),
    ) as process:
        try:
            yield process
        finally:
            process.kill()  # a no-op once it has exited; a hung test must not hang the suite


def _read_until(stream: IO[bytes], wanted: bytes) -> bytes:
    seen = b""
    while not seen.endswith(wanted):
        chunk = os.read(stream.fileno(), 100)
        assert chunk, f"the stream ended after {seen!r}"
        seen += chunk
    return seen


def test_ctrl_c_stops_an_answer_and_the_chat_goes_on(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    stalled = Reply(chunks=["alpha", " beta", " gamma"])
    fake.queue(Fault.stall(after_chunks=3, seconds=30, reply=stalled), Reply("second answer"))
    with _chat_process(tmp_path) as process:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(b"first\n")
        process.stdin.flush()
        seen = _read_until(process.stdout, b"alpha beta")
        process.send_signal(signal.SIGINT)
        # Read once the stopped answer has returned the chat to its prompt.
        stdout, stderr = process.communicate(b"second\n", timeout=20)
    assert process.returncode == 0
    assert seen + stdout == b"alpha beta\nsecond answer\n"
    assert b"callm: answer stopped" in stderr
    assert b"Traceback" not in stderr
    # The stopped answer (and its question) are not part of the history.
    assert sent_body(fake, 1)["messages"] == [user("second")]


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_ctrl_c_at_the_prompt_exits_130(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    fake.queue(Reply("answered"))
    leader, terminal = os.openpty()  # at a terminal, the "> " prompt says it is waiting
    try:
        with _chat_process(tmp_path, stdin=terminal) as process:
            assert process.stdout is not None and process.stderr is not None
            _read_until(process.stderr, b"> ")
            os.write(leader, b"hi\n")
            _read_until(process.stdout, b"answered\n")
            _read_until(process.stderr, b"> ")  # back at the prompt
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=20)
    finally:
        os.close(terminal)
        os.close(leader)
    assert process.returncode == 130
    assert b"Traceback" not in stderr
    assert b"answer stopped" not in stderr


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_at_a_terminal_a_banner_and_a_prompt_go_to_stderr(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    fake.queue(Reply("typed answer"))
    leader, terminal = os.openpty()
    try:
        with _chat_process(tmp_path, stdin=terminal) as process:
            os.write(leader, b"hi\nexit\n")
            stdout, stderr = process.communicate(timeout=20)
    finally:
        os.close(terminal)
        os.close(leader)
    assert process.returncode == 0
    assert stdout == b"typed answer\n"
    banner, *rest = stderr.decode().splitlines()
    assert banner.startswith(f"callm chat with {MODEL}, conversation ")
    assert "exit or quit" in banner
    assert "> " in "".join(rest)
    assert sent_body(fake)["messages"] == [user("hi")]


# -- callm conversations ------------------------------------------------------------------------


def test_conversations_lists_the_latest_first(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    assert callm_run("conversations").stdout.startswith("No conversations yet")
    older = started(callm_run, "-m", MODEL, "Plan a   trip\nto Lyon")
    newer = started(callm_run, "-m", MODEL, "Write a haiku")
    assert callm_run("--cid", older, "And the food?").code == 0  # now the latest again
    lines = callm_run("conversations").stdout.splitlines()
    assert [line.split()[0] for line in lines] == [older, newer]
    assert MODEL in lines[0] and "2 turns" in lines[0] and "'Plan a trip to Lyon'" in lines[0]
    listed = json.loads(callm_run("conversations", "--json", "-n", "1").stdout)
    assert [(c["id"], c["messages"], c["first_message"]) for c in listed] == [
        (older, 4, "Plan a trip to Lyon")
    ]
    assert listed[0]["usage"]["input_tokens"] > 0
