"""The command line under bad servers: bounded by --timeout, one clear line, never a hang."""

from __future__ import annotations

import time

import pytest
from cli_helpers import FAKE_KEY, CallmProcess

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
def pinging(monkeypatch: pytest.MonkeyPatch) -> HostileServer:
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
