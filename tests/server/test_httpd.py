"""The gateway's own HTTP/1.1 server, spoken to over raw sockets: keep-alive, pipelining,
100-continue, chunked bodies, HTTP/1.0, what it refuses, and its head and idle timeouts."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_process import GatewayProcess

from callm import ConfigurationError
from callm.server._settings import settings_from
from callm.testing import FakeOpenAIServer, Reply


def exchange(gateway: GatewayProcess, data: bytes, replies: int = 1) -> bytes:
    """Send raw bytes; read until ``replies`` responses came or the server closed."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as conn:
        conn.sendall(data)
        received = b""
        while received.count(b"HTTP/1.1 ") - received.count(b"HTTP/1.1 100") < replies:
            more = conn.recv(65536)
            if not more:
                break
            received += more
        return received


def chat(gateway: GatewayProcess, key: str, extra: str = "", body: bytes | None = None) -> bytes:
    payload = (
        body
        or json.dumps(
            {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
        ).encode()
    )
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n"
        + f"authorization: Bearer {key}\r\ncontent-type: application/json\r\n{extra}".encode()
        + f"content-length: {len(payload)}\r\n\r\n".encode()
        + payload
    )


def test_two_pipelined_requests_are_answered_in_order(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    upstream.queue(Reply("first"), Reply("second"))
    key = gateway.new_key()
    received = exchange(gateway, chat(gateway, key) + chat(gateway, key), replies=2)
    assert received.count(b"HTTP/1.1 200 OK") == 2
    assert received.index(b"first") < received.index(b"second")


def test_a_caller_that_hangs_up_on_its_reply_is_still_accounted(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    # The reply goes out before the call is settled and logged: the caller closing its
    # connection the moment the reply arrives must not cut that bookkeeping short.
    upstream.queue(*[Reply("quick") for _ in range(5)])
    key = gateway.new_key()
    for _ in range(5):
        assert b"quick" in exchange(gateway, chat(gateway, key, extra="connection: close\r\n"))
    _, keys = gateway.admin("GET", "/admin/keys")
    key_id = next(k["id"] for k in keys["data"] if key.startswith(k["prefix"]))
    _, usage = gateway.admin("GET", "/admin/usage")
    mine = [row for row in usage["data"] if row["key_id"] == key_id]
    assert [row["calls"] for row in mine] == [5]
    assert mine[0]["errors"] == 0 and mine[0]["output_tokens"] > 0


def test_expect_100_continue_is_answered_before_the_body(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    upstream.queue(Reply("continued"))
    key = gateway.new_key()
    request = chat(gateway, key, extra="expect: 100-continue\r\n")
    head, _, body = request.partition(b"\r\n\r\n")
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as conn:
        conn.sendall(head + b"\r\n\r\n")
        assert conn.recv(65536).startswith(b"HTTP/1.1 100 Continue")
        conn.sendall(body)
        received = b""
        while b"continued" not in received:
            received += conn.recv(65536)
    assert b"200 OK" in received


def test_a_chunked_request_body(gateway: GatewayProcess, upstream: FakeOpenAIServer) -> None:
    upstream.queue(Reply("chunked in"))
    key = gateway.new_key()
    payload = json.dumps(
        {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    ).encode()
    half = len(payload) // 2
    body = b"%x\r\n%b\r\n%x\r\n%b\r\n0\r\n\r\n" % (
        half,
        payload[:half],
        len(payload) - half,
        payload[half:],
    )
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n"
        + f"authorization: Bearer {key}\r\ntransfer-encoding: chunked\r\n\r\n".encode()
        + body
    )
    received = exchange(gateway, request)
    assert b"200 OK" in received and b"chunked in" in received


def test_http_1_0_gets_its_answer_and_the_connection_closes(gateway: GatewayProcess) -> None:
    received = exchange(gateway, b"GET /health HTTP/1.0\r\n\r\n", replies=2)
    assert received.startswith(b"HTTP/1.1 200 OK")
    assert b"connection: close" in received
    assert received.count(b"HTTP/1.1 ") == 1  # and nothing more: it closed


def test_a_body_over_the_limit_is_413_and_the_connection_closes(gateway: GatewayProcess) -> None:
    key = gateway.new_key()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n"
        + f"authorization: Bearer {key}\r\ncontent-length: 900000\r\n\r\n".encode()
        + b"x" * 1000
    )
    received = exchange(gateway, request, replies=2)
    assert received.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in received


def test_a_huge_head_is_431_and_garbage_is_400(gateway: GatewayProcess) -> None:
    huge = b"GET /health HTTP/1.1\r\n" + b"x-pad: " + b"a" * 70_000 + b"\r\n\r\n"
    assert exchange(gateway, huge).startswith(b"HTTP/1.1 431 ")
    assert exchange(gateway, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as conn:
        conn.sendall(b"GET /health HTTP/1.1\r\nhost: gw\r\n\r\n")
        assert b"200 OK" in conn.recv(65536)  # the server is fine


# --- timeouts: the once-a-second sweep closes slow heads and idle kept-alive connections ---

HEAD_TIMEOUT = 1.0
IDLE_TIMEOUT = 3.0  # apart from the head's, so a test can tell which of the two closed it
SWEEP_SLACK = 1.5  # the sweep runs once a second: a connection may outlive its deadline by that


@pytest.fixture(scope="module")
def quick(
    upstream: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """A gateway whose head and idle timeouts are short enough to wait out."""
    home: Path = tmp_path_factory.mktemp("quick-gateway-home")
    config = f"[gateway]\nhead_timeout = {HEAD_TIMEOUT}\nidle_timeout = {IDLE_TIMEOUT}\n"
    with GatewayProcess(upstream, home, config=config) as process:
        yield process


def health(conn: socket.socket) -> bytes:
    """One keep-alive ``GET /health`` on an open connection: its whole reply."""
    conn.sendall(b"GET /health HTTP/1.1\r\nhost: gw\r\n\r\n")
    received = b""
    while b"\r\n\r\n" not in received:
        more = conn.recv(65536)
        assert more, "the server closed the connection instead of answering"
        received += more
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += conn.recv(65536)
    assert head.startswith(b"HTTP/1.1 200 ")
    return received


def is_closed(conn: socket.socket, wait: float) -> bool:
    """Whether the server closed the connection (within ``wait`` seconds)."""
    readable, _, _ = select.select([conn], [], [], wait)
    if not readable:
        return False
    try:
        return conn.recv(65536) == b""
    except ConnectionResetError:
        return True


def dribble_until_closed(conn: socket.socket, head: bytes, limit: float) -> float | None:
    """Send ``head`` a byte every 0.1 s; seconds until the server closed it (None: it didn't
    within ``limit``)."""
    started = time.monotonic()
    for byte in head:
        try:
            conn.sendall(bytes([byte]))
        except OSError:
            return time.monotonic() - started
        if is_closed(conn, 0.1):
            return time.monotonic() - started
        if time.monotonic() - started > limit:
            return None
    return None


SLOW_HEAD = b"GET /health HTTP/1.1\r\nhost: gw\r\nx-slow: " + b"a" * 200 + b"\r\n\r\n"


def test_a_head_sent_too_slowly_is_closed_and_others_are_served(quick: GatewayProcess) -> None:
    port = quick.port
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as slow,
        socket.create_connection(("127.0.0.1", port), timeout=10) as other,
    ):
        served = threading.Event()

        def meanwhile() -> None:  # another caller, served while the slow head dribbles in
            for _ in range(5):
                health(other)
                time.sleep(0.1)
            served.set()

        helper = threading.Thread(target=meanwhile)
        helper.start()
        closed_after = dribble_until_closed(slow, SLOW_HEAD, HEAD_TIMEOUT + SWEEP_SLACK + 1)
        helper.join(10)
    assert closed_after is not None, "a head dribbled in slowly was never cut off"
    assert HEAD_TIMEOUT - 0.1 <= closed_after <= HEAD_TIMEOUT + SWEEP_SLACK
    assert served.is_set()


def test_an_idle_kept_alive_connection_is_closed_after_the_idle_timeout(
    quick: GatewayProcess,
) -> None:
    with socket.create_connection(("127.0.0.1", quick.port), timeout=10) as conn:
        health(conn)
        started = time.monotonic()
        closed = is_closed(conn, IDLE_TIMEOUT + SWEEP_SLACK + 1)
        idle_for = time.monotonic() - started
    assert closed, "an idle kept-alive connection was never closed"
    assert IDLE_TIMEOUT - 0.1 <= idle_for <= IDLE_TIMEOUT + SWEEP_SLACK


def test_a_kept_alive_connection_in_use_stays_open(quick: GatewayProcess) -> None:
    # Pauses longer than the head timeout but shorter than the idle one, for longer in all
    # than the idle timeout: each request resets the idle clock, and a pause is idle time.
    with socket.create_connection(("127.0.0.1", quick.port), timeout=10) as conn:
        started = time.monotonic()
        while time.monotonic() - started < IDLE_TIMEOUT + SWEEP_SLACK:
            health(conn)  # asserts each is answered: the connection was never cut
            assert not is_closed(conn, HEAD_TIMEOUT + 0.5)


def test_timeouts_must_be_positive() -> None:
    for name in ("head_timeout", "idle_timeout"):
        with pytest.raises(ConfigurationError, match=name):
            settings_from({"gateway": {name: 0}}, {})
    settings = settings_from({"gateway": {"head_timeout": 0.5, "idle_timeout": 2}}, {})
    assert (settings.head_timeout, settings.idle_timeout) == (0.5, 2)


def test_the_next_head_on_a_kept_alive_connection_has_the_head_timeout(
    quick: GatewayProcess,
) -> None:
    # After a reply the connection waits idle_timeout for a request; once one starts coming,
    # its head gets head_timeout, or a slow caller would have the (longer) idle time for it.
    with socket.create_connection(("127.0.0.1", quick.port), timeout=10) as conn:
        health(conn)
        closed_after = dribble_until_closed(conn, SLOW_HEAD, IDLE_TIMEOUT + SWEEP_SLACK + 1)
    assert closed_after is not None
    assert closed_after <= HEAD_TIMEOUT + SWEEP_SLACK
