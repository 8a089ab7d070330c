"""The benchmark's server: callm's fake, answered from memory after the first time.

Every client of a run talks to this server. The first request with a given method, path
and body goes to callm's fake server (``callm.testing.FakeOpenAIServer``, in a thread of
this process), and its answer — status, headers, body, a whole SSE stream included — is
kept; every later identical request is answered from memory by a bare asyncio protocol.
So each client sees exactly the bytes the fake would send, while the server's own cost per
request drops from a full aiohttp handler (~150-250 us here) to a few microseconds: the
run measures the clients, not the server. Replies are sent with a Content-Length (streams
too, which HTTP allows); a request the fake has not answered yet is forwarded at once.

``python bench/_replay.py`` prints ``callm replay server listening on http://…`` and serves
until terminated. ``misses`` in the stats line at exit counts the forwarded requests.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import urllib.error
import urllib.request

from callm.testing import FakeOpenAIServer

_DROP = frozenset({b"content-length", b"transfer-encoding", b"connection", b"date", b"server"})
_MAX_ENTRIES = 10_000
Answer = bytes


class Replay:
    """The answers kept so far, keyed by the request's method, path and body."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.answers: dict[tuple[bytes, bytes, bytes], Answer] = {}
        self.hits = 0
        self.misses = 0

    def answer(
        self, method: bytes, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Answer:
        key = (method, path, body)
        found = self.answers.get(key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        made = self._forward(method, path, headers, body)
        if len(self.answers) < _MAX_ENTRIES:
            self.answers[key] = made
        return made

    def _forward(
        self, method: bytes, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Answer:
        request = urllib.request.Request(
            self.upstream + path.decode(),
            data=body or None,
            method=method.decode(),
            headers={k.decode(): v.decode() for k, v in headers if k.lower() not in _DROP},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return _encode(response.status, response.getheaders(), response.read())
        except urllib.error.HTTPError as error:
            return _encode(error.code, error.headers.items(), error.read())


def _encode(status: int, headers: list[tuple[str, str]], body: bytes) -> Answer:
    lines = [f"HTTP/1.1 {status} X".encode()]
    lines += [f"{k}: {v}".encode() for k, v in headers if k.lower().encode() not in _DROP]
    lines.append(f"content-length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class _Connection(asyncio.Protocol):
    """HTTP/1.1 keep-alive with Content-Length bodies: all the benchmark's clients send."""

    def __init__(self, replay: Replay) -> None:
        self.replay = replay
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self._one_request():
            pass

    def _one_request(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = self.buffer[:end].split(b"\r\n")
        headers = [tuple(h.split(b":", 1)) for h in head[1:]]
        pairs = [(k.strip(), v.strip()) for k, v in headers]  # type: ignore[misc]
        length = next((int(v) for k, v in pairs if k.lower() == b"content-length"), 0)
        if len(self.buffer) < end + 4 + length:
            return False
        body = self.buffer[end + 4 : end + 4 + length]
        self.buffer = self.buffer[end + 4 + length :]
        method, path, _ = head[0].split(b" ", 2)
        assert self.transport is not None
        self.transport.write(self.replay.answer(method, path, pairs, body))
        return True


async def _serve(replay: Replay) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(replay), "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"callm replay server listening on http://127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main() -> int:
    with FakeOpenAIServer() as fake:
        replay = Replay(fake.url)
        asyncio.run(_serve(replay))
    print(f"replay server: {replay.hits} hits, {replay.misses} misses", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
