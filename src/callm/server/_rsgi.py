"""The gateway on granian's RSGI interface, for ``callm serve --workers N`` (one process
runs on the gateway's own server, ``_httpd.py``, which answers with less latency).

:class:`RSGIApp` adapts granian's request to an :class:`Incoming`, sends back the reply,
and cancels the request's work when the caller disconnects: a whole reply's upstream call
is cancelled at once, and a stream stops at its next chunk (the upstream stream is closed).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any

from ._http import Incoming, Reply, StreamReply, after_reply
from ._router import answer

if TYPE_CHECKING:
    from ._gateway import Gateway

logger = logging.getLogger("callm.server")
CONFIG_ENV = "CALLM_SERVE_CONFIG"  # how `callm serve` hands the config path to the worker


class RSGIApp:
    """A Gateway served over RSGI."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.max_body = gateway.settings.max_request_bytes

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self.gateway.start())
        quiet_collector()

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self.gateway.close())

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":
            return
        # granian's headers: a read-only, case-insensitive mapping of lower-case names.
        incoming = Incoming(scope.method, scope.path, scope.query_string, scope.headers)
        watch = _DisconnectWatch(protocol, asyncio.current_task())
        # Asking granian to watch the connection cost ~10% of a short request's time in
        # the profile: a request is watched only once it has run for a moment, which a
        # model call always does (a caller gone by then is noticed at once).
        timer = asyncio.get_running_loop().call_later(WATCH_AFTER_S, watch.arm)
        try:
            reply = await self._reply(incoming, protocol)
            if isinstance(reply, StreamReply):
                await _send_stream(reply, protocol)
            else:
                headers = [("content-type", reply.content_type), *reply.headers]
                protocol.response_bytes(reply.status, headers, reply.body)
                if reply.after is not None:
                    timer.cancel()
                    watch.disarm()  # answered: the caller leaving cuts no bookkeeping short
                    await after_reply(reply)
        except asyncio.CancelledError:
            if not watch.fired:
                raise
        finally:
            timer.cancel()
            watch.disarm()

    async def _reply(self, incoming: Incoming, protocol: Any) -> Reply | StreamReply:
        length = incoming.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            incoming.too_large = True  # not read: the model endpoint answers 413 in kind
        else:
            incoming.body = await protocol()
            incoming.too_large = len(incoming.body) > self.max_body
        return await answer(self.gateway, incoming)


WATCH_AFTER_S = 0.05  # how long a request runs before its connection is watched


class _DisconnectWatch:
    """Cancels a request's task when its caller disconnects, from the moment it is armed."""

    __slots__ = ("_future", "_protocol", "_task", "fired")

    def __init__(self, protocol: Any, task: asyncio.Task[Any] | None) -> None:
        self._protocol = protocol
        self._task = task
        self._future: Any = None
        self.fired = False

    def arm(self) -> None:
        # A future granian resolves when the caller disconnects (at once if it already
        # has): a callback on it costs less than a task awaiting it.
        self._future = self._protocol.client_disconnect()
        self._future.add_done_callback(self._gone)

    def _gone(self, future: Any) -> None:
        if self._task is not None and not future.cancelled():
            self.fired = True
            self._task.cancel()

    def disarm(self) -> None:
        future, self._future = self._future, None
        if future is not None:
            future.remove_done_callback(self._gone)
            future.cancel()


async def _send_stream(reply: StreamReply, protocol: Any) -> None:
    transport = protocol.response_stream(reply.status, reply.headers)
    chunks = reply.chunks
    try:
        async for chunk in chunks:
            await transport.send_bytes(chunk)
    except Exception:  # the caller is gone: stop
        logger.debug("callm serve: a stream's caller went away", exc_info=True)
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


def quiet_collector() -> None:
    """Keep the garbage collector off the hot path: what was loaded to start is frozen
    (never scanned again), and young objects are collected every 20,000 allocations, not
    700. A request's objects are freed by reference counting as it ends; the collector
    only has cycles left to find, and it found them ~5% of the time per request."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def app() -> RSGIApp:
    """The RSGI application granian loads in each worker (``factory=True``)."""
    from pathlib import Path

    from ._gateway import Gateway
    from ._settings import load_settings

    path = os.environ.get(CONFIG_ENV)
    settings = load_settings(Path(path) if path else None)
    return RSGIApp(Gateway(settings))
