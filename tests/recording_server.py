"""A loopback HTTP server that replays recorded responses, in order, whatever the path.

Tests hand it the ``response`` halves of VCR interactions (``status``, ``headers``, and
``parsed_body`` or ``body.string``); each request it receives gets the next one, byte for
byte as recorded (an SSE body is written in small pieces, so clients really stream it).
It keeps what it was sent (:class:`Received`) so a test can check the requests too. Once
the recording runs out it answers 400 — a status callm does not retry — saying so.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

# Hop-by-hop or length headers describe the original transfer, not the bytes served here.
_SKIPPED_HEADERS = frozenset(
    {"content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive"}
)
_PIECE = 64  # bytes per write of a streamed body


@dataclass(frozen=True, slots=True)
class Received:
    """One request the server received."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any  # the decoded JSON body, or None when there was none (or it was not JSON)


@dataclass(frozen=True, slots=True)
class Recorded:
    """One recorded response, ready to serve."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @classmethod
    def from_vcr(cls, response: Mapping[str, Any]) -> Recorded:
        return cls(response["status"]["code"], _headers(response), _body(response))

    @property
    def streamed(self) -> bool:
        return any(k == "content-type" and "event-stream" in v for k, v in self.headers)


def _headers(response: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    headers = []
    for name, values in (response.get("headers") or {}).items():
        if name.lower() in _SKIPPED_HEADERS:
            continue
        for value in values if isinstance(values, list) else [values]:
            headers.append((name.lower(), str(value)))
    return tuple(headers)


def _body(response: Mapping[str, Any]) -> bytes:
    if "parsed_body" in response:
        return json.dumps(response["parsed_body"]).encode()
    body = (response.get("body") or {}).get("string", "")
    return body if isinstance(body, bytes) else body.encode()


class RecordingServer:
    """``with RecordingServer(responses) as server:`` — ``server.url`` serves them in order."""

    def __init__(self, responses: Iterable[Mapping[str, Any] | Recorded]) -> None:
        self._queue = [r if isinstance(r, Recorded) else Recorded.from_vcr(r) for r in responses]
        self._lock = threading.Lock()
        self.received: list[Received] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        # A short poll keeps shutdown() quick: it waits for the serving loop to notice.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def remaining(self) -> int:
        """Recorded responses not served yet."""
        with self._lock:
            return len(self._queue)

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _next(self, received: Received) -> Recorded | None:
        with self._lock:
            self.received.append(received)
            return self._queue.pop(0) if self._queue else None


def _handler_for(server: RecordingServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: pytest's output is no place for an access log."""

        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            headers = {k.lower(): v for k, v in self.headers.items()}
            recorded = server._next(Received(self.command, self.path, headers, body))
            if recorded is None:
                recorded = _EXHAUSTED
            self.send_response(recorded.status)
            for name, value in recorded.headers:
                self.send_header(name, value)
            self.send_header("content-length", str(len(recorded.body)))
            self.end_headers()
            step = _PIECE if recorded.streamed else len(recorded.body) or 1
            for start in range(0, len(recorded.body), step):
                self.wfile.write(recorded.body[start : start + step])
                self.wfile.flush()

    return Handler


_EXHAUSTED = Recorded(
    400,
    (("content-type", "application/json"),),
    json.dumps(
        {"error": {"message": "recording exhausted: no more recorded responses to replay"}}
    ).encode(),
)
