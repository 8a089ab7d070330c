"""The gateway on granian's RSGI interface (chosen by benchmark; see bench/gateway.py).

:class:`RSGIApp` adapts granian's request to an :class:`Incoming`, sends back the reply,
and cancels the request's work when the caller disconnects: a whole reply's upstream call
is cancelled at once, and a stream stops at its next chunk (the upstream stream is closed).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any

from ._http import Incoming, Reply, StreamReply, json_reply
from ._router import handle

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

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self.gateway.close())

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":
            return
        # granian's headers: a read-only, case-insensitive mapping of lower-case names.
        incoming = Incoming(scope.method, scope.path, scope.query_string, scope.headers)
        task = asyncio.current_task()
        # A future granian resolves when the caller disconnects: a callback on it costs
        # less than a task awaiting it, on every request.
        watcher = protocol.client_disconnect()

        def gone(_: Any) -> None:  # the caller disconnected: stop working for it
            if task is not None:
                task.cancel()

        watcher.add_done_callback(gone)
        try:
            reply = await self._reply(incoming, protocol)
            if isinstance(reply, StreamReply):
                await _send_stream(reply, protocol)
            else:
                headers = [("content-type", reply.content_type), *reply.headers]
                protocol.response_bytes(reply.status, headers, reply.body)
        except asyncio.CancelledError:
            if not watcher.done():
                raise
        finally:
            watcher.remove_done_callback(gone)
            watcher.cancel()

    async def _reply(self, incoming: Incoming, protocol: Any) -> Reply | StreamReply:
        length = incoming.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            incoming.too_large = True  # not read: the model endpoint answers 413 in kind
        else:
            incoming.body = await protocol()
            incoming.too_large = len(incoming.body) > self.max_body
        try:
            return await handle(self.gateway, incoming)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("callm serve: unexpected error")
            return json_reply(
                500, {"error": {"message": "internal error in the gateway", "type": "server_error"}}
            )


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


def app() -> RSGIApp:
    """The RSGI application granian loads in each worker (``factory=True``)."""
    from pathlib import Path

    from ._gateway import Gateway
    from ._settings import load_settings

    path = os.environ.get(CONFIG_ENV)
    settings = load_settings(Path(path) if path else None)
    return RSGIApp(Gateway(settings))
