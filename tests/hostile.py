"""A loopback HTTP server whose answers are written by hand, byte by byte, to misbehave.

The fakes in :mod:`callm.testing` are faithful servers; this one is for servers that are
not: it trickles bytes, answers a stream with an HTML page, sends a gzip bomb, echoes the
key it was sent. Each test gives it an ``answer(request, send)`` function; ``send`` writes
raw bytes and returns False once the client has gone (or the server is stopping).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the server read it; header names are lower-case."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


Send = Callable[[bytes], bool]
Answer = Callable[[Received, Send], None]


class HostileServer:
    """``with HostileServer(answer) as server:`` → ``server.base_url`` (``…/v1``)."""

    def __init__(self, answer: Answer) -> None:
        self._answer = answer
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = self.url + "/v1"
        self.received: list[Received] = []
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> HostileServer:
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self._threads.append(accept)
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        self._listener.settimeout(0.05)  # so the loop sees ``stopping``
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            worker = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            worker.start()
            self._threads.append(worker)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            request = _read_request(conn)
            if request is None:
                return
            self.received.append(request)

            def send(data: bytes) -> bool:
                if self.stopping.is_set():
                    return False
                try:
                    conn.sendall(data)
                except OSError:
                    return False
                return True

            self._answer(request, send)


def _read_request(conn: socket.socket) -> Received | None:
    conn.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return None
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        piece = conn.recv(65536)
        if not piece:
            break
        body += piece
    return Received(method, path, headers, body)


def head(
    status: int = 200, headers: Iterable[tuple[str, str]] = (), *, length: int | None = None
) -> bytes:
    """A status line and headers; the body is delimited by closing the connection unless
    ``length`` is given."""
    lines = [f"HTTP/1.1 {status} X"]
    lines += [f"{name}: {value}" for name, value in headers]
    if length is not None:
        lines.append(f"content-length: {length}")
    lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def trickle(send: Send, data: bytes, every: float) -> None:
    """Send ``data`` one byte at a time, ``every`` seconds apart, until the client leaves."""
    for index in range(len(data)):
        if not send(data[index : index + 1]):
            return
        time.sleep(every)


def drip_forever(send: Send, piece: bytes, every: float, limit: float = 30.0) -> None:
    """Send ``piece`` every ``every`` seconds until the client leaves (or ``limit`` passes)."""
    ends = time.monotonic() + limit
    while time.monotonic() < ends and send(piece):
        time.sleep(every)


def chat_json(text: str = "ok", usage: Any = None, **fields: Any) -> bytes:
    """An OpenAI Chat completion body."""
    body: dict[str, Any] = {
        "id": "chatcmpl-hostile",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": usage
        if usage is not None
        else {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    body.update(fields)
    return json.dumps(body).encode()


def sse(*payloads: Any) -> bytes:
    """Chat stream events (each a JSON value, or a str sent as is), then ``[DONE]``."""
    out = b""
    for payload in payloads:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        out += f"data: {data}\n\n".encode()
    return out + b"data: [DONE]\n\n"


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    """One OpenAI Chat stream chunk."""
    return {
        "id": "chatcmpl-hostile",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
