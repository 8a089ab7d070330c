"""The gateway's upstream HTTP/1.1 client against a raw loopback server that answers with
exactly the bytes each test scripts: framing, keep-alive, stale connections, timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from callm import APIConnectionError, APITimeoutError
from callm._core.http import HttpRequest
from callm._core.timeouts import Timeout
from callm.server._http_client import UpstreamTransport

OK = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}'
TIMEOUT = Timeout(connect=2, read=2, total=5)

Answer = Callable[[bytes], list[bytes]]  # the request's bytes -> what to send, in pieces


class RawServer:
    """Answers each request on a connection with the pieces ``answer`` gives (a piece of
    b"" closes the connection); counts connections and requests."""

    def __init__(self, answer: Answer, *, gap: float = 0.0) -> None:
        self.answer = answer
        self.gap = gap
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        for writer in self.writers:
            writer.close()
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                for piece in self.answer(request):
                    if not piece:
                        writer.close()
                        return
                    writer.write(piece)
                    await writer.drain()
                    if self.gap:
                        await asyncio.sleep(self.gap)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def post(url: str, body: bytes = b'{"q":1}') -> HttpRequest:
    return HttpRequest("POST", url + "/v1/x?a=1", {"authorization": "Bearer k"}, body)


def run(test: Callable[[], Any]) -> Any:
    return asyncio.run(test())


def test_a_whole_reply_and_the_request_on_the_wire() -> None:
    async def go() -> None:
        async with RawServer(lambda r: [OK]) as server:
            transport = UpstreamTransport()
            response = await transport.send(post(server.url), TIMEOUT)
            assert (response.status, response.body) == (200, b'{"ok":true}')
            assert response.headers["content-type"] == "application/json"
            sent = server.requests[0]
            assert sent.startswith(b"POST /v1/x?a=1 HTTP/1.1\r\n")
            assert b"authorization: Bearer k\r\n" in sent
            assert sent.endswith(b'\r\n\r\n{"q":1}')
            await transport.close()

    run(go)


def test_one_connection_serves_request_after_request() -> None:
    async def go() -> None:
        async with RawServer(lambda r: [OK]) as server:
            transport = UpstreamTransport()
            for _ in range(5):
                assert (await transport.send(post(server.url), TIMEOUT)).status == 200
            assert server.connections == 1
            await transport.close()

    run(go)


@pytest.mark.parametrize("cut", [1, 7, 20, 45, 60])
def test_a_chunked_reply_cut_anywhere(cut: int) -> None:
    body = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n7;x=y\r\n, world\r\n0\r\n\r\n"
    )

    async def go() -> None:
        async with RawServer(lambda r: [body[:cut], body[cut:]], gap=0.01) as server:
            transport = UpstreamTransport()
            response = await transport.send(post(server.url), TIMEOUT)
            assert response.body == b"hello, world"
            assert (await transport.send(post(server.url), TIMEOUT)).body == b"hello, world"
            assert server.connections == 1  # read to the end: reused
            await transport.close()

    run(go)


def test_a_reply_that_ends_with_the_connection() -> None:
    answer = [b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it", b""]

    async def go() -> None:
        async with RawServer(lambda r: answer) as server:
            transport = UpstreamTransport()
            assert (await transport.send(post(server.url), TIMEOUT)).body == b"all of it"
            assert (await transport.send(post(server.url), TIMEOUT)).body == b"all of it"
            assert server.connections == 2  # never reused
            await transport.close()

    run(go)


def test_an_interim_100_continue_is_skipped() -> None:
    async def go() -> None:
        async with RawServer(lambda r: [b"HTTP/1.1 100 Continue\r\n\r\n", OK]) as server:
            transport = UpstreamTransport()
            assert (await transport.send(post(server.url), TIMEOUT)).status == 200
            await transport.close()

    run(go)


def test_a_pooled_connection_the_server_closed_is_replaced_once() -> None:
    async def go() -> None:
        async with RawServer(lambda r: [OK]) as server:
            transport = UpstreamTransport()
            await transport.send(post(server.url), TIMEOUT)
            for writer in server.writers:  # the server's keep-alive timer fires
                writer.close()
            await asyncio.sleep(0.05)
            assert (await transport.send(post(server.url), TIMEOUT)).status == 200
            assert server.connections == 2
            await transport.close()

    run(go)


def test_a_stream_arrives_in_pieces_and_frees_its_connection() -> None:
    pieces = [
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
        b"8\r\ndata: 1\n\r\n",
        b"8\r\ndata: 2\n\r\n",
        b"0\r\n\r\n",
    ]

    async def go() -> None:
        async with RawServer(lambda r: pieces, gap=0.02) as server:
            transport = UpstreamTransport()
            stream = await transport.open_stream(post(server.url), TIMEOUT)
            assert stream.status == 200
            assert [c async for c in stream.chunks()] == [b"data: 1\n", b"data: 2\n"]
            await stream.close()
            again = await transport.open_stream(post(server.url), TIMEOUT)
            assert await again.read() == b"data: 1\ndata: 2\n"
            assert server.connections == 1
            await transport.close()

    run(go)


def test_a_stream_closed_early_never_goes_back_to_the_pool() -> None:
    pieces = [
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        b"8\r\ndata: 1\n\r\n",
        b"8\r\ndata: 2\n\r\n",
        b"0\r\n\r\n",
    ]

    async def go() -> None:
        async with RawServer(lambda r: pieces, gap=0.05) as server:
            transport = UpstreamTransport()
            stream = await transport.open_stream(post(server.url), TIMEOUT)
            async for _ in stream.chunks():
                break
            await stream.close()
            await transport.send(post(server.url), TIMEOUT)
            assert server.connections == 2

    run(go)


def test_silence_past_the_read_timeout_is_a_timeout() -> None:
    async def go() -> None:
        async with RawServer(
            lambda r: [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab"]
        ) as server:
            transport = UpstreamTransport()
            with pytest.raises(APITimeoutError):
                await transport.send(post(server.url), Timeout(connect=1, read=0.2, total=5))

    run(go)


def test_a_trickle_past_the_total_is_a_timeout() -> None:
    def trickle(request: bytes) -> list[bytes]:
        return [b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n"] + [b"x"] * 50

    async def go() -> None:
        async with RawServer(trickle, gap=0.05) as server:
            transport = UpstreamTransport()
            with pytest.raises(APITimeoutError):
                await transport.send(post(server.url), Timeout(connect=1, read=1, total=0.5))

    run(go)


def test_one_silent_exchange_among_many_times_out_alone_and_soon() -> None:
    # The timeouts of all exchanges in flight are checked on one timer: the silent one
    # fails a little after its read timeout, and the others are answered.
    def answer(request: bytes) -> list[bytes]:
        if b'"silent"' in request:
            return [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab"]
        return [OK]

    async def go() -> None:
        async with RawServer(answer) as server:
            transport = UpstreamTransport()
            timeout = Timeout(connect=1, read=0.3, total=5)
            started = asyncio.get_running_loop().time()
            silent = asyncio.ensure_future(
                transport.send(post(server.url, b'{"q":"silent"}'), timeout)
            )
            answered = await asyncio.gather(
                *(transport.send(post(server.url), timeout) for _ in range(5))
            )
            assert [r.status for r in answered] == [200] * 5
            with pytest.raises(APITimeoutError):
                await silent
            assert 0.3 <= asyncio.get_running_loop().time() - started < 1.5

    run(go)


def test_a_transport_still_times_out_in_a_second_event_loop() -> None:
    silence = [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab"]
    transport = UpstreamTransport()

    async def abandon() -> None:  # the loop ends while an exchange is still watched
        async with RawServer(lambda r: silence) as server:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(transport.send(post(server.url), TIMEOUT), 0.1)

    async def go() -> None:
        async with RawServer(lambda r: silence) as server:
            with pytest.raises(APITimeoutError):
                await transport.send(post(server.url), Timeout(connect=1, read=0.2, total=2))

    run(abandon)
    run(go)  # the first loop's timer went with it: a new one watches this exchange


def test_nothing_listening_is_a_connection_error() -> None:
    async def go() -> None:
        async with RawServer(lambda r: [OK]) as server:
            url = server.url
        with pytest.raises(APIConnectionError, match="could not reach"):
            await UpstreamTransport().send(post(url), TIMEOUT)

    run(go)


def test_a_malformed_answer_is_a_connection_error() -> None:
    async def go() -> None:
        async with RawServer(lambda r: [b"HTTP/1.1 2xx nonsense\r\n\r\n"]) as server:
            with pytest.raises(APIConnectionError, match="malformed"):
                await UpstreamTransport().send(post(server.url), TIMEOUT)

    run(go)


def test_a_cancelled_exchange_closes_its_connection() -> None:
    async def go() -> None:
        async with RawServer(
            lambda r: [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab"]
        ) as server:
            transport = UpstreamTransport()
            task = asyncio.create_task(transport.send(post(server.url), TIMEOUT))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not any(transport._idle.values())  # the pool is the point

    run(go)


def test_bytes_past_the_end_of_a_reply_retire_its_connection() -> None:
    async def go() -> None:
        async with RawServer(lambda r: [OK + b"HTTP/1.1 200 OK\r\n"]) as server:
            transport = UpstreamTransport()
            assert (await transport.send(post(server.url), TIMEOUT)).status == 200
            assert (await transport.send(post(server.url), TIMEOUT)).status == 200
            assert server.connections == 2  # the first was not trusted again

    run(go)


def test_an_error_page_is_read_only_up_to_the_limit() -> None:
    from callm._transport._limits import ERROR_BODY_LIMIT

    size = ERROR_BODY_LIMIT * 3
    head = b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: %d\r\n\r\n" % size

    async def go() -> None:
        async with RawServer(lambda r: [head, b"<html>" + b"x" * (size - 6)]) as server:
            response = await UpstreamTransport().send(post(server.url), TIMEOUT)
            assert response.status == 502
            assert len(response.body) == ERROR_BODY_LIMIT
            assert response.body.startswith(b"<html>")

    run(go)
