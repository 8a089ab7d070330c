"""One model request, start to end: key, body, model, admission, the call, the reply.

Errors at every step go back in the caller's own protocol (its codec's ``encode_error``),
with the status the gateway's contract names: 401 key, 403 model not allowed, 404 unknown
model, 400 bad request, 413 too large, 429 limits (``retry-after``; the code says which),
502/503/504 upstream failures. An upstream 401/403 is the gateway's own configuration
problem and is reported as such (502), never as the caller's credentials.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .._core.errors import (
    APIStatusError,
    AuthenticationError,
    CallmError,
    ConfigurationError,
    InvalidRequestError,
    PermissionDeniedError,
    RateLimitError,
)
from .._core.types import Request, Response, Usage
from .._store._redact import redact_text
from ..protocols import server_codec_for
from . import _tracing, _upstream
from ._direct import Answer, direct_route, reply_body, send_direct
from ._http import SSE_HEADERS, Incoming, Reply, StreamReply, dumps, loads
from ._ledger import Refused, Reservation, VirtualKey
from ._observe import Outcome

if TYPE_CHECKING:
    from ..protocols import ServerCodec
    from ._gateway import Gateway
    from ._ingress import Ingress

logger = logging.getLogger("callm.server")


@dataclass(slots=True)
class Call:
    """The state of one model request, carried with it from step to step."""

    gateway: Gateway
    ingress: Ingress
    codec: ServerCodec
    outcome: Outcome
    key: VirtualKey | None = None
    request: Request | None = None
    model: str = ""  # as the engine knows it: "provider/model", an alias or a group
    shown_model: str = ""  # as the caller named it
    candidates: tuple[str, ...] = ()  # every concrete model the name may reach
    capped: bool = False  # the gateway set max_tokens: the caller's own body lacks it
    ticket: Reservation | None = None


async def model_request(
    gateway: Gateway, ingress: Ingress, incoming: Incoming
) -> Reply | StreamReply:
    """Serve one request to a model endpoint."""
    outcome = gateway.observer.begin(incoming.method, incoming.path, ingress.route)
    try:
        codec = server_codec_for(ingress.protocol)
    except ConfigurationError as exc:
        outcome.status = 404
        gateway.observer.report(outcome)
        return Reply(404, dumps({"error": {"message": str(exc)}}))
    call = Call(gateway, ingress, codec, outcome)
    try:
        body = await _admitted(call, incoming)
    except CallmError as exc:
        return _finish_error(call, exc)
    if ingress.count_tokens:
        return await _counted(call)
    if call.request is not None and call.request.stream:
        return await _streamed(call, body)
    return await _whole(call, body)


async def _admitted(call: Call, incoming: Incoming) -> Mapping[str, object]:
    """Authenticate, read, route and admit the request; sets the call's fields."""
    gateway, ingress = call.gateway, call.ingress
    call.key = key = await gateway.authenticate(incoming)
    call.outcome.key_id = key.id
    if incoming.too_large:
        raise _too_large(gateway.settings.max_request_bytes)
    body = _json_body(incoming.body)
    request = call.codec.decode_request(body, model=ingress.model)
    if ingress.stream is not None:
        request = replace(request, stream=ingress.stream)
    call.shown_model = request.model
    call.model, candidates = gateway.route(request.model, ingress.native_provider)
    call.candidates = candidates
    call.outcome.model, call.outcome.stream = call.model, request.stream
    if not gateway.allowed(key, call.model, candidates):
        raise Refused(
            f"this key may not use the model {call.shown_model!r}",
            code="model_not_allowed",
            status=403,
        )
    if ingress.count_tokens:  # counting costs nothing: no reservation
        call.request = replace(request, stream=False)
        return body
    call.request, call.ticket = await _reserve(call, request, candidates)
    return body


def _json_body(raw: bytes) -> Mapping[str, object]:
    try:
        body = loads(raw)
    except ValueError as exc:
        raise InvalidRequestError(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    return body


def _too_large(limit: int) -> Refused:
    return Refused(
        f"the request body is larger than this gateway's limit of {limit} bytes",
        code="request_too_large",
        status=413,
    )


async def _reserve(
    call: Call, request: Request, candidates: tuple[str, ...]
) -> tuple[Request, Reservation]:
    """Reserve the call's tokens and its highest possible cost (exact admission)."""
    gateway, limits = call.gateway, call.key.limits  # type: ignore[union-attr]
    metered = limits.budget_usd is not None or limits.tpm is not None
    tokens, cost = 0, None
    if metered:
        if request.max_tokens is None:
            # A cap makes the reservation an upper bound, so a budget cannot be overshot.
            request = replace(request, max_tokens=gateway.settings.default_max_tokens)
            call.capped = True
        prompt = _upstream.input_tokens(request)
        tokens = prompt + (request.max_tokens or 0)
        if limits.budget_usd is not None:
            usage = Usage(input_tokens=prompt, output_tokens=request.max_tokens or 0)
            cost = _upstream.most_expensive(gateway.client, candidates, usage)
    ticket = await gateway.ledger.reserve(
        call.key,  # type: ignore[arg-type]
        call.model,
        tokens=tokens,
        cost=cost,
    )
    return request, ticket


def _tags(call: Call) -> dict[str, str]:
    return {"ingress": call.ingress.fields_for, "key_id": call.key.id if call.key else ""}


async def _counted(call: Call) -> Reply:
    """A token count (the provider's counting endpoint, else the library's best count)."""
    request = call.request
    assert request is not None
    encode = getattr(call.codec, "encode_count_tokens", None)
    try:
        if encode is None:
            raise InvalidRequestError(f"{call.ingress.protocol} has no token counting endpoint")
        with _tracing.current(call.outcome.span):
            count = await call.gateway.client.count(
                call.model, _upstream.engine_request(request), {}
            )
    except CallmError as exc:
        return _finish_error(call, exc)
    call.outcome.status = 200
    call.gateway.observer.report(call.outcome)
    return Reply(200, dumps(encode(count.tokens)))


async def _whole(call: Call, body: Mapping[str, object]) -> Reply:
    gateway, request = call.gateway, call.request
    assert request is not None
    route = None
    if not (call.ingress.count_tokens or call.capped or call.outcome.span is not None):
        route = direct_route(gateway, call.ingress.protocol, request, call.candidates)
    try:
        if route is not None:
            answer = await send_direct(gateway, route, body)
        else:
            with _tracing.current(call.outcome.span):
                answer = Answer.of(
                    await gateway.client.send(
                        call.model, _upstream.engine_request(request), {"tags": _tags(call)}
                    )
                )
    except CallmError as exc:
        await _give_back(call, getattr(exc, "partial", None))
        return _finish_error(call, exc)
    except BaseException:  # cancelled: the caller went away
        await _give_back(call, None)
        raise
    out = reply_body(answer.raw, call.shown_model) if route is not None else None
    if out is None:
        assert answer.response is not None  # a reply not passed on is always decoded
        out = call.codec.encode_response(answer.response, model=call.shown_model)
    call.outcome.status = 200

    async def account() -> None:
        # After the reply is written: the reservation still holds the call's highest
        # cost until this settles it, so admission stays exact meanwhile.
        if route is not None:
            cost = _upstream.price(gateway.client, route.model, answer.usage)
        else:  # priced by the engine
            cost = answer.response.cost if answer.response is not None else None
        await _settle(call, answer.usage, cost)
        gateway.observer.report(call.outcome)

    return Reply(200, dumps(out), after=account)


async def _streamed(call: Call, body: Mapping[str, object]) -> Reply | StreamReply:
    gateway, request = call.gateway, call.request
    assert request is not None
    try:
        with _tracing.current(call.outcome.span):
            stream = await gateway.client.open(
                call.model, _upstream.engine_request(request), {"tags": _tags(call)}
            )
    except CallmError as exc:
        await _give_back(call, None)
        return _finish_error(call, exc)
    except BaseException:
        await _give_back(call, None)
        raise
    encoder = call.codec.StreamEncoder(
        model=call.shown_model, include_usage=call.ingress.include_usage(body)
    )
    call.outcome.status = 200
    return StreamReply(200, _frames(call, stream, encoder), list(SSE_HEADERS))


async def _frames(call: Call, stream: Any, encoder: Any) -> AsyncIterator[bytes]:
    """The SSE frames of a streamed reply; whatever happens, the ticket is settled once."""
    finished = False
    try:
        yield encoder.start()
        async for event in stream:
            if call.outcome.ttft_s is None:
                call.outcome.ttft_s = time.perf_counter() - call.outcome.started
            frame = encoder.encode(event)
            if frame:
                yield frame
        response = stream.response
        finished = True
        await _settle(call, response.usage, response.cost)
        yield encoder.finish(response)
    except CallmError as exc:
        finished = True
        await _give_back(call, getattr(exc, "partial", None))
        _describe(call, exc)
        yield encoder.error(_shown_error(exc))
    finally:
        if not finished:  # the caller went away: stop the upstream call, keep what it used
            await stream.close()
            await _give_back(call, stream.response)
            call.outcome.code = call.outcome.code or "client_disconnected"
        call.gateway.observer.report(call.outcome)


async def _settle(call: Call, usage: Usage, cost: Decimal | None) -> None:
    call.outcome.usage, call.outcome.cost = usage, cost
    if call.ticket is not None:
        if cost is None and usage.total_tokens == 0:
            cost = Decimal(0)
        await call.gateway.ledger.settle(call.ticket, usage, cost)


async def _give_back(call: Call, partial: Response | None) -> None:
    """Settle a failed call: what it used if anything arrived, else release it."""
    ticket = call.ticket
    if ticket is None:
        return
    if partial is None or partial.usage.total_tokens == 0:
        await call.gateway.ledger.release(ticket)
        return
    cost = _upstream.price(call.gateway.client, call.model, partial.usage)
    call.outcome.usage, call.outcome.cost = partial.usage, cost
    await call.gateway.ledger.settle(ticket, partial.usage, cost, ok=False)


def _finish_error(call: Call, exc: CallmError) -> Reply:
    status = _describe(call, exc)
    status, body = call.codec.encode_error(_shown_error(exc), status=status)
    call.outcome.status = status
    call.gateway.observer.report(call.outcome)
    headers = []
    retry_after = getattr(exc, "retry_after", None)
    if status == 429 and retry_after is not None:
        headers.append(("retry-after", str(max(1, round(retry_after + 0.499)))))
    return Reply(status, dumps(body), headers)


def _describe(call: Call, exc: CallmError) -> int | None:
    """The status the gateway's contract gives ``exc`` (None: the codec's default)."""
    if isinstance(exc, Refused):
        call.outcome.code = exc.code
        return exc.status
    code = getattr(exc, "code", None)
    call.outcome.code = str(code) if code else type(exc).__name__
    if isinstance(exc, AuthenticationError | PermissionDeniedError | ConfigurationError):
        logger.error("callm serve: the upstream refused the gateway's credentials: %s", exc)
        return 502
    if isinstance(exc, RateLimitError):
        return 429
    if isinstance(exc, APIStatusError) and exc.status_code is not None:
        return exc.status_code if exc.status_code < 500 else None
    return None


def _shown_error(exc: CallmError) -> CallmError:
    """The error as a caller may see it: gateway problems explained, secrets masked."""
    if isinstance(exc, AuthenticationError | PermissionDeniedError | ConfigurationError):
        provider = getattr(exc, "provider", None) or "the provider"
        return ConfigurationError(
            f"the gateway could not authenticate with {provider}: its configured "
            "credentials were refused or are missing. This is the gateway's configuration, "
            "not your key; tell the gateway's administrator"
        )
    if isinstance(exc, Refused):
        return exc
    message = getattr(exc, "message", None) or str(exc)
    cleaned = redact_text(message)
    if isinstance(exc, RateLimitError):
        return RateLimitError(cleaned, retry_after=exc.retry_after, code=exc.code)
    if cleaned != message:
        return (
            type(exc)(cleaned) if not isinstance(exc, APIStatusError) else APIStatusError(cleaned)
        )
    return exc
