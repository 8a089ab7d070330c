"""The command line under bad servers: bounded by --timeout, one clear line, never a hang."""

from __future__ import annotations

import json
import os
import secrets
import signal
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import FAKE_KEY, CallmProcess

import callm
from callm.testing import FakeOpenAIServer, Fault, Reply
from hostile import HostileServer, Received, Send, chunk, drip_forever, head, sse, trickle


def pings_forever(request: Received, send: Send) -> None:
    """A stream that begins, then sends only keep-alive comments; a plain reply trickled."""
    if request.json.get("stream"):
        send(head(200, [("content-type", "text/event-stream")]))
        send(sse(chunk({"role": "assistant", "content": "Hel"})).removesuffix(b"data: [DONE]\n\n"))
        drip_forever(send, b": keep-alive\n\n", 0.05)
    else:
        body = b'{"choices": [' + b" " * 2000 + b"]}"
        send(head(200, [("content-type", "application/json")], length=len(body)))
        trickle(send, body, 0.01)


@pytest.fixture
def pinging(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileServer]:
    with HostileServer(pings_forever) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
        yield server


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no-stream"])
def test_timeout_option_stops_a_server_that_never_finishes(
    callm_run: CallmProcess, pinging: HostileServer, stream: bool
) -> None:
    flags = [] if stream else ["--no-stream"]
    started = time.monotonic()
    done = callm_run("--timeout", "1", "-m", "openai/m", *flags, "hi")
    assert time.monotonic() - started < 10
    assert done.code == 1
    assert done.error_lines[-1].startswith("callm: error: ")
    assert "timeout" in done.error_lines[-1]
    if stream:
        assert done.stdout == "Hel\n"  # what arrived is kept


def test_chat_and_compare_take_the_timeout_too(
    callm_run: CallmProcess, pinging: HostileServer
) -> None:
    started = time.monotonic()
    chat = callm_run("chat", "--timeout", "1", "-m", "openai/m", input="hi\n")
    compare = callm_run("compare", "--timeout", "1", "-m", "openai/a", "-m", "openai/b", "hi")
    assert time.monotonic() - started < 20
    assert chat.code == 1 and "timeout" in chat.stderr
    assert compare.code == 1 and compare.stdout.count("total timeout") == 2


def test_timeout_must_be_positive(callm_run: CallmProcess) -> None:
    done = callm_run("--timeout", "0", "-m", "local/offline", "hi")
    assert done.code == 2 and "--timeout" in done.stderr


# -- no key on the command line ------------------------------------------------------------


def _alnum(n: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))


def echo_key(request: Received, send: Send) -> None:
    """A 401 quoting the key and the whole query string it was sent."""
    key = request.headers.get("authorization", "").removeprefix("Bearer ")
    message = f"Incorrect API key provided: {key} (on {request.path})"
    body = json.dumps({"error": {"message": message}}).encode()
    send(head(401, [("content-type", "application/json")], length=len(body)) + body)


def test_no_key_reaches_the_terminal_or_the_log(
    callm_run: CallmProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, token = _alnum(32), _alnum(24)  # shapes no pattern knows
    with HostileServer(echo_key) as server:
        monkeypatch.setenv("MISTRAL_API_KEY", key)
        monkeypatch.setenv("MISTRAL_BASE_URL", f"{server.base_url}?token={token}")
        done = callm_run("--debug", "-m", "mistral/m", "hi")
        logs = callm_run("logs", "--json")
    assert server.received[0].path == f"/v1/chat/completions?token={token}"
    assert done.code == 1
    assert "Incorrect API key provided: ***" in done.stderr
    for text in (done.stdout, done.stderr, logs.stdout, logs.stderr):
        assert key not in text and token not in text


def test_curl_hides_every_secret_of_the_config(callm_run: CallmProcess, cli_home: Path) -> None:
    key, header_key, password, token = _alnum(32), _alnum(32), _alnum(16), _alnum(24)
    cli_home.mkdir(parents=True, exist_ok=True)
    (cli_home / "config.toml").write_text(
        "[providers.gw]\n"
        f'base_url = "https://user:{password}@gw.example/v1?api_key={token}"\n'
        'auth = "x-api-key"\n'
        f'api_key = "{key}"\n'
        f'headers = {{ "X-Portkey-Api-Key" = "{header_key}", "X-Trace" = "kept" }}\n'
    )
    done = callm_run("--curl", "-m", "gw/m", "hi")
    assert done.code == 0, done.stderr
    for secret in (key, header_key, password, token):
        assert secret not in done.stdout
    assert "x-trace: kept" in done.stdout
    assert "https://gw.example/v1/chat/completions?api_key=***" in done.stdout
    assert "authorization: Basic ***" in done.stdout


# -- one conversation, two processes ----------------------------------------------------------


def test_two_processes_continuing_one_conversation_keep_both_turns(
    callm_run: CallmProcess, fake: FakeOpenAIServer
) -> None:
    fake.queue(Reply("one"))
    started = callm_run("--json", "-m", "openai/gpt-4o-mini", "start")
    cid = json.loads(started.stdout)["conversation_id"]
    # Both answers come late, so both processes hold the same history when they save.
    fake.queue(
        Fault.slow_first_byte(1.0, reply=Reply("answer")),
        Fault.slow_first_byte(1.0, reply=Reply("answer")),
    )
    both = [
        subprocess.Popen(
            callm_run.argv("--cid", cid, f"question {side}"),
            cwd=callm_run.cwd,
            env=dict(os.environ),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for side in ("a", "b")
    ]
    for process in both:
        _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
    with callm.Client() as client:
        stored = client.conversation(id=cid)
        calls = client.pipeline.store().recent_calls(10)
    texts = [m.text for m in stored.messages]
    assert len(texts) == 6 and texts[:2] == ["start", "one"]
    assert sorted(texts[2::2]) == ["question a", "question b"]
    assert texts[3::2] == ["answer", "answer"]
    assert len(calls) == 3  # usage is the sum of the three calls, not the last writer's
    assert stored.usage.input_tokens == sum(c.input_tokens for c in calls)
    assert stored.usage.output_tokens == sum(c.output_tokens for c in calls)


# -- honest accounting --------------------------------------------------------------------------


def test_ctrl_c_during_an_answer_is_logged_as_cancelled_with_its_part(
    callm_run: CallmProcess, fake: FakeOpenAIServer
) -> None:
    # Python's own SIGINT handler, even if the test runner ignores SIGINT.
    with_sigint = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "sys.argv[0] = 'callm'; from callm.cli import main; main()"
    )
    stalled = Reply(chunks=["alpha", " beta", " gamma", " delta", " epsilon"])
    fake.queue(Fault.stall(after_chunks=3, seconds=30, reply=stalled))
    with subprocess.Popen(
        [sys.executable, "-c", with_sigint, "-m", "openai/gpt-4o-mini", "go"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=callm_run.cwd,
        env=dict(os.environ),
    ) as process:
        try:
            assert process.stdout is not None
            seen = b""
            while b"alpha beta" not in seen:
                piece = os.read(process.stdout.fileno(), 100)
                assert piece, f"the answer ended after {seen!r}"
                seen += piece
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=20)
        finally:
            process.kill()
    assert process.returncode == 130, err
    (call,) = json.loads(callm_run("logs", "--json").stdout)
    assert call["status"] == "cancelled"
    assert call["response_text"].startswith("alpha beta")  # what had arrived
    assert "epsilon" not in call["response_text"]


# -- bad input: one clear line, never a traceback ----------------------------------------------


@pytest.mark.parametrize("option", ["stream=false", "messages=[]", "model=other"])
def test_options_cannot_override_callms_own_fields(
    callm_run: CallmProcess, fake: FakeOpenAIServer, option: str
) -> None:
    done = callm_run("-m", "openai/gpt-4o-mini", "-o", option, "hi")
    assert done.code == 2
    assert option.partition("=")[0] in done.error_lines[-1]
    assert "Traceback" not in done.stderr
    assert fake.requests == []


def test_bad_bytes_in_a_prompt_or_on_stdin_are_a_clear_error(
    callm_run: CallmProcess, fake: FakeOpenAIServer
) -> None:
    argv = subprocess.run(
        [*callm_run.argv("-m", "openai/gpt-4o-mini"), b"caf\xe9 \xff"],  # not UTF-8
        capture_output=True,
        cwd=callm_run.cwd,
        env=dict(os.environ),
        timeout=20,
        check=False,
    )
    piped = subprocess.run(
        callm_run.argv("-m", "openai/gpt-4o-mini", "summarise"),
        input=b"caf\xe9 \xff\xfe",
        capture_output=True,
        cwd=callm_run.cwd,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        timeout=20,
        check=False,
    )
    for done in (argv, piped):
        stderr = done.stderr.decode()
        assert done.returncode == 2, stderr
        assert "Traceback" not in stderr
        assert stderr.splitlines()[-1].startswith("callm: error: ")
        assert "UTF-8" in stderr or "Unicode" in stderr
    assert fake.requests == []


def test_a_broken_configuration_is_one_line_and_exit_2(
    callm_run: CallmProcess, cli_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli_home.mkdir(parents=True, exist_ok=True)
    (cli_home / "config.toml").write_text('[providers.p]\nbase_url = 5\napi_key = "k"\n')
    typed = callm_run("-m", "p/m", "hi")
    home_file = tmp_path / "home-file"
    home_file.write_text("")
    monkeypatch.setenv("CALLM_HOME", str(home_file))
    not_a_folder = callm_run("-m", "local/offline", "hi")
    for done, said in ((typed, "base_url must be text"), (not_a_folder, "is a file")):
        assert done.code == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert said in done.error_lines[-1]
