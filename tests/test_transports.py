"""Every transport maps its library's failures to callm's errors, and a user's httpx2 works."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest

import callm
from callm.testing import FakeOpenAIServer, Fault, Reply
from helpers import fake_provider

SYNC = {"urllib3": lambda: None, "httpx2": httpx2.Client}
ASYNC = {"aiohttp": lambda: None, "httpx2": httpx2.AsyncClient}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(params=sorted(SYNC))
def sync_client(request: pytest.FixtureRequest) -> Callable[..., callm.Client]:
    def make(base_url: str, **kwargs: Any) -> callm.Client:
        http = SYNC[request.param]()
        return callm.Client(providers=fake_provider(base_url), http_client=http, **kwargs)

    return make


@pytest.fixture(params=sorted(ASYNC))
async def async_client(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Callable[..., callm.AsyncClient]]:
    made: list[Any] = []

    def make(base_url: str, **kwargs: Any) -> callm.AsyncClient:
        http = ASYNC[request.param]()
        made.append(http)
        return callm.AsyncClient(providers=fake_provider(base_url), http_client=http, **kwargs)

    yield make
    for http in made:
        if http is not None:
            await http.aclose()


def test_sync_success_stream_and_errors(
    sync_client: Callable[..., callm.Client], fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.queue(
        Reply("plain"),
        Reply(chunks=["s", "t"]),
        Fault.slow_first_byte(1.0),
        Fault.drop_mid_stream(after_chunks=2),
    )
    client = sync_client(fake_openai.base_url, max_retries=0, timeout=callm.Timeout(read=0.2))
    assert client.complete("fake/m", "x").text == "plain"
    with client.stream("fake/m", "x") as s:
        assert s.response.text == "st"
    with pytest.raises(callm.APITimeoutError):
        client.complete("fake/m", "x")
    with pytest.raises(callm.StreamInterruptedError), client.stream("fake/m", "x") as s2:
        list(s2)
    refused = sync_client(f"http://127.0.0.1:{_free_port()}/v1", max_retries=0)
    with pytest.raises(callm.APIConnectionError) as info:
        refused.complete("fake/m", "x")
    assert not isinstance(info.value, callm.APITimeoutError)


async def test_async_success_stream_and_errors(
    async_client: Callable[..., callm.AsyncClient], fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.queue(
        Reply("plain"),
        Reply(chunks=["s", "t"]),
        Fault.slow_first_byte(1.0),
        Fault.drop_mid_stream(after_chunks=2),
    )
    client = async_client(fake_openai.base_url, max_retries=0, timeout=callm.Timeout(read=0.2))
    async with client:
        assert (await client.complete("fake/m", "x")).text == "plain"
        s = await client.stream("fake/m", "x")
        async with s:
            assert (await s.get_response()).text == "st"
        with pytest.raises(callm.APITimeoutError):
            await client.complete("fake/m", "x")
        s2 = await client.stream("fake/m", "x")
        with pytest.raises(callm.StreamInterruptedError):
            async with s2:
                async for _ in s2:
                    pass
    refused = async_client(f"http://127.0.0.1:{_free_port()}/v1", max_retries=0)
    async with refused:
        with pytest.raises(callm.APIConnectionError) as info:
            await refused.complete("fake/m", "x")
    assert not isinstance(info.value, callm.APITimeoutError)


def test_users_httpx2_client_sees_the_requests(fake_openai: FakeOpenAIServer) -> None:
    seen: list[str] = []
    http = httpx2.Client(event_hooks={"request": [lambda r: seen.append(str(r.url))]})
    with http:
        client = callm.Client(providers=fake_provider(fake_openai.base_url), http_client=http)
        client.complete("fake/m", "x")
        client.close()
        assert not http.is_closed  # the caller's client is the caller's to close
    assert seen == [fake_openai.base_url + "/chat/completions"]


@pytest.mark.parametrize("transport", sorted(SYNC))
def test_a_stream_with_a_content_length_leaves_its_connection_for_the_next_call(
    transport: str,
) -> None:
    # Streams usually come chunked; some servers and proxies send a Content-Length instead.
    # Read to its end, such a stream must leave its connection to the next request.
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from hostile import chunk, sse

    body = sse(chunk({"role": "assistant", "content": "hi"}), chunk({}, "stop"))
    connections: list[object] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive

        def setup(self) -> None:
            connections.append(self.client_address)
            super().setup()

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    http = SYNC[transport]()
    base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    client = callm.Client(providers=fake_provider(base_url), http_client=http, max_retries=0)
    try:
        for _ in range(3):
            with client.stream("fake/m", "hi") as stream:
                assert "".join(e.text for e in stream if e.type == "text") == "hi"
    finally:
        client.close()
        if http is not None:
            http.close()
        server.shutdown()
        server.server_close()
    assert len(connections) == 1
