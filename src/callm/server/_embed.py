"""``POST /v1/embeddings``: the gateway's embeddings endpoint, for OpenAI-style callers.

The same steps as a chat request (:mod:`callm.server._proxy`): the virtual key, the body,
the model (aliases, groups, the key's allowed models), admission against the key's limits
(its tokens — estimated from the inputs — and their highest possible cost are reserved),
the call through the shared engine (split under the upstream's per-request limit, sent
concurrently, every policy applied), then the ledger is settled with the real usage and
cost, and the request is counted and logged. Any upstream with embeddings serves it
(OpenAI-compatible or Gemini); the vectors go back as the caller asked (JSON numbers, or
base64 as the official SDKs ask).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from .._core.errors import CallmError
from .._core.types import Usage
from ..protocols import server_codec_for
from ..protocols.openai_chat.embeddings_server import decode_embed_body, encode_embed_body
from . import _tracing, _upstream
from ._http import Incoming, Reply, dumps
from ._ingress import Ingress
from ._ledger import Refused
from ._proxy import Call, _finish_error, _give_back, _json_body, _tags, _too_large

if TYPE_CHECKING:
    from .._core.embeddings import Embeddings, EmbedRequest
    from ._gateway import Gateway

EMBEDDINGS_PATHS = frozenset({"/v1/embeddings", "/embeddings"})
_INGRESS = Ingress("openai_embeddings", "openai", "/v1/embeddings")


async def embeddings_request(gateway: Gateway, incoming: Incoming) -> Reply:
    """Serve one ``POST /v1/embeddings``."""
    outcome = gateway.observer.begin(incoming.method, incoming.path, _INGRESS.route)
    call = Call(gateway, _INGRESS, server_codec_for("openai_chat"), outcome)
    try:
        request, encoding = decode_embed_body(await _admitted_body(call, incoming))
        await _admit(call, request)
    except CallmError as exc:
        return _finish_error(call, exc)
    params: dict[str, object] = {"tags": _tags(call)}
    if request.user is not None:
        params["user"] = request.user
    answered: list[Embeddings] = []  # the requests that succeeded, as they arrive
    try:
        with _tracing.current(outcome.span):
            result = await gateway.client.embed_inputs(
                call.model, request.inputs, request.dimensions, params, on_piece=answered.append
            )
    except CallmError as exc:
        await _charge_answered(call, answered)
        return _finish_error(call, exc)
    except BaseException:  # cancelled: the caller went away
        await _charge_answered(call, answered)
        raise
    outcome.usage, outcome.cost = result.usage, result.cost
    if call.ticket is not None:
        cost = result.cost if result.cost is not None or result.usage.input_tokens else Decimal(0)
        await gateway.ledger.settle(call.ticket, result.usage, cost)
    body = encode_embed_body(result, model=call.shown_model, encoding_format=encoding)
    outcome.status = 200
    gateway.observer.report(outcome)
    return Reply(200, dumps(body))


async def _charge_answered(call: Call, answered: list[Embeddings]) -> None:
    """Settle a failed call: a long input list goes upstream in several requests, and those
    that succeeded before one failed were paid for, so the key is charged for them."""
    if not answered:
        await _give_back(call, None)
        return
    usage = Usage()
    cost: Decimal | None = Decimal(0)
    for part in answered:
        usage += part.usage
        cost = None if cost is None or part.cost is None else cost + part.cost
    call.outcome.usage, call.outcome.cost = usage, cost
    if call.ticket is not None:
        await call.gateway.ledger.settle(call.ticket, usage, cost, ok=False)


async def _admitted_body(call: Call, incoming: Incoming) -> dict[str, object]:
    call.key = await call.gateway.authenticate(incoming)
    call.outcome.key_id = call.key.id
    if incoming.too_large:
        raise _too_large(call.gateway.settings.max_request_bytes)
    return dict(_json_body(incoming.body))


async def _admit(call: Call, request: EmbedRequest) -> None:
    """Route the model, check the key may use it, and reserve against the key's limits."""
    gateway, key = call.gateway, call.key
    assert key is not None
    call.shown_model = request.model
    call.model, candidates = gateway.route(request.model, _INGRESS.native_provider)
    call.outcome.model = call.model
    if not gateway.allowed(key, call.model, candidates):
        raise Refused(
            f"this key may not use the model {call.shown_model!r}",
            code="model_not_allowed",
            status=403,
        )
    limits = key.limits
    tokens, cost = 0, None
    if limits.budget_usd is not None or limits.tpm is not None:
        from .._engine.embed import estimate_tokens

        tokens = estimate_tokens(request.inputs)  # conservative: an upper bound
        if limits.budget_usd is not None:
            usage = Usage(input_tokens=tokens)
            cost = _upstream.most_expensive(gateway.client, candidates, usage)
    call.ticket = await gateway.ledger.reserve(key, call.model, tokens=tokens, cost=cost)
