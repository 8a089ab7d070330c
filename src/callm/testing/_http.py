"""What the fake's routes share: rejecting a request, recording it, and answering it whole.

Every protocol's routes (``_app`` for OpenAI Chat, ``_responses_fake``, ``_anthropic_fake``,
``_gemini_fake``) build on these, so none of them imports another.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from . import local_model
from ._script import Fault, RecordedRequest, Reply
from ._wire import dumps, error_body

_JSON = "application/json"
_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
_BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please "
    "contact us through our help center at help.openai.com.)"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
AddRoute = Callable[[str, str, Handler], object]


class Rejected(Exception):
    """Raised by a handler to answer with an error response at once."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _error(
    status: int,
    message: str,
    request_id: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    return web.Response(
        status=status,
        body=error_body(message, type, param, code),
        headers={"Content-Type": _JSON, "x-request-id": request_id, **(headers or {})},
    )


async def record_request(request: web.Request) -> RecordedRequest:
    """The request as recorded for ``server.requests`` (body read once, JSON parsed)."""
    raw = await request.read()
    parsed: object = None
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
    return RecordedRequest(
        method=request.method,
        path=request.path,
        query=dict(request.query),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=raw,
        json=parsed,
    )


def _given_key(headers: Mapping[str, str]) -> str | None:
    authorization = headers.get("authorization")
    if authorization is not None and authorization.startswith("Bearer "):
        return authorization[len("Bearer ") :]
    return headers.get("api-key") or headers.get("x-api-key")


def _body(record: RecordedRequest, request_id: str) -> dict[str, object]:
    if not isinstance(record.json, dict):
        raise Rejected(_error(400, _BAD_JSON, request_id))
    return record.json


def _reply(item: Reply | Fault | None, body: Mapping[str, object]) -> Reply:
    if isinstance(item, Reply):
        return item
    if item is not None and item.reply is not None:
        return item.reply
    return local_model.reply_to(body)


def _json_response(body: bytes, request_id: str) -> web.Response:
    return web.Response(body=body, headers={"Content-Type": _JSON, "x-request-id": request_id})


def _fault_status(fault: Fault, request_id: str) -> web.Response:
    headers = {"Content-Type": _JSON, "x-request-id": request_id, **fault.headers}
    body = dumps({"error": fault.error}).encode()
    return web.Response(status=fault.status_code, body=body, headers=headers)


async def _whole(
    request: web.Request, body: bytes, headers: dict[str, str], fault: Fault | None
) -> web.StreamResponse:
    """A non-streaming answer; a mid-body fault splits the body in half."""
    if fault is None or fault.kind == "slow_first_byte":
        return web.Response(body=body, headers={"Content-Type": _JSON, **headers})
    if fault.kind == "malformed_json":
        # A proper prefix of a JSON object is never valid JSON.
        return web.Response(body=body[: len(body) // 2], headers={"Content-Type": _JSON, **headers})
    if fault.kind == "stream_error":
        error = fault.error or {}
        message = str(error.get("message"))
        kind = str(error.get("type") or "server_error")
        return _error(fault.status_code, message, headers["x-request-id"], type=kind)
    response = web.StreamResponse(headers={"Content-Type": _JSON, **headers})
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    if fault.kind == "drop_mid_stream":
        return _drop(request, response)
    await asyncio.sleep(fault.seconds)
    await response.write(body[len(body) // 2 :])
    await response.write_eof()
    return response


def _drop(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """Close the connection now; what was written is flushed, nothing more is sent."""
    transport = request.transport
    if transport is not None:
        transport.close()
    # aiohttp's attempt to finish this response then fails quietly on the closed transport.
    return response
