"""``callm "prompt"`` end to end: a real subprocess talking to a fake OpenAI server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from cli_helpers import FAKE_KEY, CallmProcess, sent_body

from callm._config.settings import LOCAL_NOTICE
from callm.testing import FakeOpenAIServer, FakeToolCall, Fault, Reply

MODEL = "openai/gpt-4o-mini"


def test_streams_the_answer_to_stdout(fake: FakeOpenAIServer, callm_run: CallmProcess) -> None:
    fake.queue(Reply("Hello there, friend."))
    result = callm_run("-m", MODEL, "Say hello")
    assert (result.code, result.stdout, result.stderr) == (0, "Hello there, friend.\n", "")
    body = sent_body(fake)
    assert body["stream"] is True
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == [{"role": "user", "content": "Say hello"}]


def test_an_answer_ending_in_a_newline_gets_no_second_one(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Reply("line one\nline two\n"))
    assert callm_run("-m", MODEL, "hi").stdout == "line one\nline two\n"


def test_piped_stdin_follows_the_prompt_after_a_blank_line(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Reply("ok"))
    result = callm_run("-m", MODEL, "summarise", input="first line\nsecond line\n")
    assert result.code == 0
    content = sent_body(fake)["messages"][0]["content"]
    assert content == "summarise\n\nfirst line\nsecond line"


def test_piped_stdin_alone_is_the_prompt(fake: FakeOpenAIServer, callm_run: CallmProcess) -> None:
    fake.queue(Reply("ok"))
    assert callm_run("-m", MODEL, input="just stdin\n").code == 0
    assert sent_body(fake)["messages"][0]["content"] == "just stdin"


def test_no_prompt_and_no_stdin_is_a_usage_error(callm_run: CallmProcess) -> None:
    result = callm_run()
    assert result.code == 2
    assert result.stdout == ""
    [line] = result.error_lines
    assert line.startswith("callm: error: give a prompt")


def test_the_offline_notice_is_printed_exactly_once(callm_run: CallmProcess) -> None:
    result = callm_run("hello offline")
    assert result.code == 0
    assert result.stderr == LOCAL_NOTICE + "\n"
    assert result.stdout.startswith('[offline] You said: "hello offline".')
    assert result.stdout.endswith("\n")


def test_an_explicit_local_model_prints_no_notice(callm_run: CallmProcess) -> None:
    result = callm_run("-m", "local/offline", "hi")
    assert (result.code, result.stderr) == (0, "")
    assert result.stdout.startswith("[offline]")


def test_a_stored_key_makes_the_real_provider_the_default(
    fake: FakeOpenAIServer, callm_run: CallmProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    assert callm_run("keys", "set", "openai", input=FAKE_KEY + "\n").code == 0
    fake.queue(Reply("from the fake"))
    result = callm_run("hi")
    assert (result.code, result.stdout, result.stderr) == (0, "from the fake\n", "")
    assert fake.requests[0].headers["authorization"] == f"Bearer {FAKE_KEY}"


def test_no_stream_sends_one_plain_request(fake: FakeOpenAIServer, callm_run: CallmProcess) -> None:
    fake.queue(Reply("all at once"))
    result = callm_run("-m", MODEL, "--no-stream", "hi")
    assert (result.code, result.stdout) == (0, "all at once\n")
    assert "stream" not in sent_body(fake)


def test_json_prints_the_normalised_response(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    call = FakeToolCall("lookup", {"q": "weather"}, id="call_1")
    fake.queue(Reply("Looking it up.", tool_calls=[call], usage={"prompt_tokens": 7}))
    result = callm_run("-m", MODEL, "--json", "weather?")
    assert result.code == 0
    data = json.loads(result.stdout)
    assert set(data) == {
        "text",
        "finish_reason",
        "model",
        "provider",
        "id",
        "request_id",
        "usage",
        "tool_calls",
        "latency_s",
        "ttft_s",
        "cost",
        "conversation_id",
    }
    assert data["text"] == "Looking it up."
    assert data["finish_reason"] == "tool_calls"
    assert (data["provider"], data["model"]) == ("openai", "gpt-4o-mini")
    assert data["tool_calls"] == [{"id": "call_1", "name": "lookup", "arguments": {"q": "weather"}}]
    usage = data["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert {"cached_input_tokens", "cache_write_tokens", "reasoning_tokens"} <= set(usage)
    # gpt-4o-mini has a known price: the cost is a decimal string, never a float.
    assert Decimal(data["cost"]) > 0
    # --json reads a stream (so time to first token is known) unless --no-stream is given.
    assert sent_body(fake)["stream"] is True
    assert data["ttft_s"] is not None
    assert data["latency_s"] >= data["ttft_s"]


def test_json_with_no_stream_makes_a_plain_call(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Reply("plain"))
    data = json.loads(callm_run("-m", MODEL, "--json", "--no-stream", "hi").stdout)
    assert (data["text"], data["ttft_s"]) == ("plain", None)
    assert "stream" not in sent_body(fake)


def test_raw_prints_the_provider_json(fake: FakeOpenAIServer, callm_run: CallmProcess) -> None:
    fake.queue(Reply("raw text"))
    result = callm_run("-m", MODEL, "--raw", "hi")
    assert result.code == 0
    raw = json.loads(result.stdout)
    assert raw["object"] == "chat.completion"
    assert raw["choices"][0]["message"]["content"] == "raw text"
    assert "stream" not in sent_body(fake)


def test_curl_prints_the_request_without_the_key(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    result = callm_run("-m", MODEL, "-o", "temperature=0.3", "--curl", "Say hi")
    assert result.code == 0
    assert fake.base_url + "/chat/completions" in result.stdout
    assert '"messages":[{"role":"user","content":"Say hi"}]' in result.stdout
    assert '"temperature":0.3' in result.stdout
    assert '"authorization: Bearer $OPENAI_API_KEY"' in result.stdout
    assert FAKE_KEY not in result.stdout + result.stderr
    assert fake.requests == []


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl program")
def test_the_printed_curl_command_runs(fake: FakeOpenAIServer, callm_run: CallmProcess) -> None:
    command = callm_run("-m", MODEL, "--no-stream", "--curl", "Say hi").stdout
    fake.queue(Reply("curl works"))
    done = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, timeout=20, check=True
    )
    assert json.loads(done.stdout)["choices"][0]["message"]["content"] == "curl works"


def test_the_printed_curl_command_streams_by_default(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    command = callm_run("-m", MODEL, "--curl", "Say hi").stdout
    fake.queue(Reply("streamed curl"))
    done = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, timeout=20, check=True
    )
    assert done.stdout.rstrip().endswith("data: [DONE]")
    assert fake.requests[-1].json["stream"] is True
    assert "\n  -N \\\n" in command


def test_a_refused_key_exits_1_with_one_line(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Fault.unauthorized())
    result = callm_run("-m", MODEL, "hi")
    assert (result.code, result.stdout) == (1, "")
    [line] = result.error_lines
    assert line.startswith("callm: error: openai: HTTP 401: Incorrect API key")


def test_debug_shows_the_traceback_and_the_log(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    fake.queue(Fault.unauthorized())
    result = callm_run("-m", MODEL, "--debug", "hi")
    assert result.code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "AuthenticationError" in result.stderr
    assert "-> 401" in result.stderr  # the library's DEBUG line for the request
    assert result.error_lines[-1].startswith("callm: error: openai: HTTP 401")


def test_an_unknown_provider_exits_2(callm_run: CallmProcess) -> None:
    result = callm_run("-m", "nosuch/model", "hi")
    assert result.code == 2
    [line] = result.error_lines
    assert line.startswith("callm: error: unknown provider 'nosuch'")


def test_a_missing_key_exits_2_saying_how_to_set_one(callm_run: CallmProcess) -> None:
    result = callm_run("-m", MODEL, "hi")
    assert result.code == 2
    [line] = result.error_lines
    assert "OPENAI_API_KEY" in line
    assert "callm keys set openai" in line


def test_a_stream_dropped_midway_keeps_what_was_printed(
    fake: FakeOpenAIServer, callm_run: CallmProcess
) -> None:
    reply = Reply(chunks=["one", " two", " three", " four"])
    fake.queue(Fault.drop_mid_stream(after_chunks=3, reply=reply))
    result = callm_run("-m", MODEL, "count")
    assert result.code == 1
    # Three events went out: the role announcement, "one" and " two".
    assert result.stdout == "one two\n"
    [line] = result.error_lines
    assert line.startswith("callm: error: openai: ")


def test_ctrl_c_during_a_stream_exits_130(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    reply = Reply(chunks=["alpha", " beta", " gamma"])
    fake.queue(Fault.stall(after_chunks=3, seconds=30, reply=reply))
    # Run with Python's own SIGINT handler even if this test runner ignores SIGINT.
    code = "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    code += "sys.argv[0] = 'callm'; from callm.cli import main; main()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "-m", MODEL, "count"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=dict(os.environ),
    )
    try:
        assert process.stdout is not None
        seen = b""
        while seen != b"alpha beta":
            seen += os.read(process.stdout.fileno(), 100)
        # The server is stalling, yet the fragments are here: each was flushed on arrival.
        assert process.poll() is None
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 130
    assert seen + stdout == b"alpha beta\n"
    assert b"Traceback" not in stderr
