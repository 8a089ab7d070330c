"""Which code answers a request: a model endpoint, the admin API or an operations page."""

from __future__ import annotations

import asyncio
import logging
import time

from ._embed import EMBEDDINGS_PATHS, embeddings_request
from ._gateway import Gateway
from ._http import Incoming, Reply, StreamReply, json_reply
from ._ingress import ingress_for
from ._ledger import Refused
from ._proxy import model_request

logger = logging.getLogger("callm.server")


async def answer(gateway: Gateway, request: Incoming) -> Reply | StreamReply:
    """``handle``, for either server: a bug in the gateway is logged and answered 500 in
    JSON, never a dropped connection; a cancelled request stays cancelled."""
    try:
        return await handle(gateway, request)
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("callm serve: unexpected error")
        return json_reply(
            500, {"error": {"message": "internal error in the gateway", "type": "server_error"}}
        )


async def handle(gateway: Gateway, request: Incoming) -> Reply | StreamReply:
    """Answer one request (never raises for a bad request: that is an error reply)."""
    method, path = request.method, request.path
    if method == "POST":
        if path in EMBEDDINGS_PATHS:
            return await embeddings_request(gateway, request)
        ingress = ingress_for(path)
        if ingress is not None:
            return await model_request(gateway, ingress, request)
    if path.startswith("/admin/"):
        from ._admin import admin_request

        return await admin_request(gateway, request)
    if method == "GET" and path == "/v1/models":
        try:
            await gateway.authenticate(request)
        except Refused as exc:
            return json_reply(exc.status, {"error": {"message": exc.message, "code": exc.code}})
        return _models(gateway, request)
    if method == "GET":
        page = _PAGES.get(path)
        if page is not None:
            return page(gateway, request)
    return json_reply(
        404, {"error": {"message": f"no endpoint {method} {path}", "type": "not_found_error"}}
    )


def _health(gateway: Gateway, request: Incoming) -> Reply:
    return json_reply(200, {"status": "ok"})


def _ready(gateway: Gateway, request: Incoming) -> Reply:
    if not gateway.ready or gateway.draining:
        return json_reply(503, {"status": "draining" if gateway.draining else "starting"})
    # The stores' state is always shown: limits held per instance (Redis unreachable, the
    # fleet configured to carry on) is ready, but says so; refusing calls is not ready.
    stores = gateway.ledger.health()
    if stores["ready"]:
        return json_reply(200, {"status": "ready", "stores": stores})
    return json_reply(503, {"status": "unavailable", "stores": stores})


def _metrics(gateway: Gateway, request: Incoming) -> Reply:
    if gateway.metrics is None:
        return json_reply(404, {"error": {"message": "metrics are off"}})
    gateway.observer.flush()  # the requests finished so far, counted
    gateway.metrics.stores(gateway.ledger.health())
    body, content_type = gateway.metrics.exposition()
    return Reply(200, body, content_type=content_type)


def _models(gateway: Gateway, request: Incoming) -> Reply:
    now = int(time.time())
    data = [
        {"id": name, "object": "model", "created": now, "owned_by": "callm"}
        for name in gateway.known_models()
    ]
    return json_reply(200, {"object": "list", "data": data})


def _openapi(gateway: Gateway, request: Incoming) -> Reply:
    from ._openapi import openapi_document

    return json_reply(200, openapi_document())


_PAGES = {
    "/health": _health,
    "/ready": _ready,
    "/metrics": _metrics,
    "/openapi.json": _openapi,
}
