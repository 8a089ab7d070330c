"""The gateway's own HTTP/1.1 server, spoken to over raw sockets: keep-alive, pipelining,
100-continue, chunked bodies, HTTP/1.0, and what it refuses."""

from __future__ import annotations

import json
import socket

from gateway_process import GatewayProcess

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
