"""Embeddings through the send engine: split, send concurrently, join in input order.

An ``embed()`` call resolves its model once, splits the inputs under the protocol's
per-request limits (:meth:`~callm.protocols.EmbedProtocol.embed_limits`: inputs, and
tokens summed over them, estimated on the safe side; the provider entry's
``embed_batch_size`` quirk lowers the first) and sends each piece as an attempt of its own,
through the same policies as a chat call: hooks, the call log (one row per request: the
number of inputs, usage and cost, never the vectors), tracing, the budget, rate limits,
cost, and the retries of the send path. The pieces go concurrently (threads for the sync
client, tasks for the async one) and come back in input order.

Two things differ from chat, on purpose: the response cache never answers an embeddings
request, and fallbacks do not apply — the vectors of two models do not mix, and one call's
pieces must all come from the same model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, cast

from .._config.settings import Settings, split_model
from .._core.embeddings import Embeddings, EmbedLimits, EmbedRequest, EncodingFormat
from .._core.endpoint import Endpoint
from .._core.errors import InvalidRequestError
from .._core.params import CallParams
from .._core.timeouts import Timeout
from .._core.types import Message, Request, Response, Text, Usage
from .._policies.base import Attempt, CallInfo
from ..protocols import EmbedProtocol, WireProtocol, embed_protocol_for, protocol_for

if TYPE_CHECKING:
    from .._core.http import HttpRequest
    from .pipeline import Pipeline
    from .send import Call

_clock = time.perf_counter
DEFAULT_CONCURRENCY = 4
_EMPTY: Mapping[str, str] = {}


class _Engine(Protocol):
    """What embedding needs of an engine (both engines have it)."""

    pipeline: Pipeline
    settings: Settings

    def resolve_model(self, model: str | None) -> tuple[Endpoint, str]: ...

    def _call(
        self, endpoint: Endpoint, wire: WireProtocol, http: HttpRequest, params: CallParams
    ) -> Call: ...


class EmbedParams(TypedDict, total=False):
    """The optional parameters of an ``embed()`` call (keyword-only)."""

    # "base64" (default where the provider entry allows it) or "float": how vectors travel.
    encoding_format: EncodingFormat
    user: str
    # Merged into the body (Gemini: into each input's entry, e.g. {"taskType": "…"}).
    extra_body: Mapping[str, object]
    extra_headers: Mapping[str, str]
    timeout: float | Timeout | None
    max_retries: int
    # At most this many requests in flight when the inputs take several (default 4).
    max_concurrency: int
    tags: Mapping[str, str]
    log: bool


_KNOWN = frozenset(EmbedParams.__annotations__)
_CALL_KEYS = ("timeout", "max_retries", "tags", "log")


@dataclass(frozen=True, slots=True)
class EmbedPlan:
    """One ``embed()`` call, resolved: where it goes and the requests it takes."""

    name: str  # "provider/model"
    endpoint: Endpoint
    wire: WireProtocol
    codec: EmbedProtocol
    pieces: tuple[EmbedRequest, ...]
    params: CallParams
    concurrency: int


def plan_embed(
    engine: _Engine,
    model: str | None,
    inputs: str | Iterable[str],
    dimensions: int | None,
    params: Mapping[str, Any],
) -> EmbedPlan:
    """Resolve the model, check the parameters and split the inputs into requests."""
    texts = (inputs,) if isinstance(inputs, str) else tuple(inputs)
    _check(texts, dimensions, params)
    routes = engine.pipeline.routes
    if routes.active:  # aliases and groups pick the model; fallbacks do not apply
        model = routes.plan(model, _stand_in(model or "", texts))[0]
    if not model:
        raise InvalidRequestError("embed() needs a model, e.g. openai/text-embedding-3-small")
    provider, name = split_model(model)
    protocol = engine.settings.spec(provider).protocol_for(name)
    codec = embed_protocol_for(protocol)
    if codec is None:  # said before a missing key is
        raise InvalidRequestError(
            f"{provider} ({protocol}) has no embeddings endpoint in callm; "
            "use an OpenAI-compatible, Gemini, Vertex AI or Bedrock provider"
        )
    endpoint, name = engine.resolve_model(model)
    limits = codec.embed_limits(endpoint, name)
    request = EmbedRequest(
        name,
        (),
        dimensions,
        params.get("encoding_format"),
        params.get("user"),
        params.get("extra_body") or {},
        params.get("extra_headers") or {},
    )
    pieces = tuple(replace(request, inputs=group) for group in split_inputs(texts, limits))
    call_params = cast("CallParams", {k: params[k] for k in _CALL_KEYS if k in params})
    call_params["response_cache"] = False  # the cache holds chat replies, not vectors
    return EmbedPlan(
        f"{endpoint.provider}/{name}",
        endpoint,
        protocol_for(endpoint.protocol),
        codec,
        pieces,
        call_params,
        max(1, params.get("max_concurrency", DEFAULT_CONCURRENCY)),
    )


def _check(texts: Sequence[str], dimensions: int | None, params: Mapping[str, Any]) -> None:
    unknown = set(params) - _KNOWN
    if unknown:
        raise InvalidRequestError(
            f"embed() got unknown parameter(s) {', '.join(sorted(unknown))}; known: "
            f"dimensions, {', '.join(sorted(_KNOWN))} (provider fields go in extra_body)"
        )
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidRequestError(
                f"embed() takes strings; input {position} is {type(text).__name__}"
            )
    if dimensions is not None and (isinstance(dimensions, bool) or dimensions < 1):
        raise InvalidRequestError(f"dimensions must be a positive number, not {dimensions!r}")


def split_inputs(texts: tuple[str, ...], limits: EmbedLimits) -> list[tuple[str, ...]]:
    """The inputs in consecutive groups, each within ``limits`` (an input larger than the
    token limit goes alone: the provider's answer says what is wrong with it)."""
    if limits.tokens is None:
        size = limits.inputs
        return [texts[i : i + size] for i in range(0, len(texts), size)]
    groups: list[tuple[str, ...]] = []
    start, tokens = 0, 0
    for end, text in enumerate(texts):
        wanted = request_tokens(text)
        if end > start and (end - start >= limits.inputs or tokens + wanted > limits.tokens):
            groups.append(texts[start:end])
            start, tokens = end, 0
        tokens += wanted
    if start < len(texts):
        groups.append(texts[start:])
    return groups


def request_tokens(text: str) -> int:
    """An input's tokens on the safe side, for the per-request token limit: a third of its
    UTF-8 bytes (tokenizers take 3.5 to 4.5 bytes a token on English, about 3 on CJK)."""
    size = len(text) if text.isascii() else len(text.encode())
    return size // 3 + 1


def _stand_in(model: str, texts: Sequence[str]) -> Request:
    """The chat-shaped request the policies see for these inputs (see CallInfo.embed)."""
    return Request(model, (Message("user", tuple(Text(t) for t in texts)),))


def start_piece(engine: _Engine, plan: EmbedPlan, piece: EmbedRequest) -> tuple[Attempt, Call]:
    """One request of the plan, admitted and prepared by the policies, ready to send."""
    params = plan.params
    info = CallInfo(plan.name, _stand_in(piece.model, piece.inputs), params.get("tags") or _EMPTY,
                    False, embed=piece)  # fmt: skip
    attempt = Attempt(info, plan.endpoint, (plan.name,), params)
    pipeline = engine.pipeline
    pipeline.admit(attempt)
    sent = attempt.info.embed or piece  # a hook may have changed it
    attempt.http = http = plan.codec.encode_embed_request(plan.endpoint, sent)
    pipeline.prepare(attempt)
    return attempt, engine._call(plan.endpoint, plan.wire, http, params)


def finish_piece(
    engine: _Engine,
    plan: EmbedPlan,
    attempt: Attempt,
    decoded: Embeddings,
    headers: Mapping[str, str],
) -> Embeddings:
    """A decoded piece through the policies on the way back: priced, logged, counted."""
    if decoded.usage_estimated and not decoded.usage.input_tokens:
        sent = attempt.info.embed
        assert sent is not None
        decoded = replace(decoded, usage=Usage(input_tokens=estimate_tokens(sent.inputs)))
    stand_in = Response(
        decoded.request_id or "",
        decoded.model,
        plan.endpoint.provider,
        (),
        None,
        decoded.usage,
        request_id=decoded.request_id,
        latency_s=decoded.latency_s,
    )
    priced = engine.pipeline.succeed(attempt, stand_in, headers)
    return replace(decoded, cost=priced.cost, tried=attempt.tried)


def estimate_tokens(texts: Iterable[str]) -> int:
    """Input tokens when the provider reports none: callm's conservative estimate
    (``ceil(characters / 3)`` an input; see :mod:`callm._policies.tokens`)."""
    from .._policies.tokens import CHARS_PER_TOKEN

    return sum(math.ceil(len(t) / CHARS_PER_TOKEN) for t in texts)


def joined(plan: EmbedPlan, parts: Sequence[Embeddings], latency_s: float) -> Embeddings:
    """The pieces of one call as one result, in input order."""
    if not parts:
        model = plan.name.partition("/")[2]
        return Embeddings([], model, plan.endpoint.provider, latency_s=0.0, requests=0)
    if len(parts) == 1:
        return replace(parts[0], latency_s=latency_s)
    vectors: list[list[float]] = []
    usage = Usage()
    cost: Decimal | None = Decimal(0)
    for part in parts:
        vectors.extend(part.vectors)
        usage += part.usage
        cost = None if cost is None or part.cost is None else cost + part.cost
    first = parts[0]
    return Embeddings(
        vectors,
        first.model,
        first.provider,
        usage,
        cost,
        any(p.usage_estimated for p in parts),
        first.request_id,
        latency_s,
        len(parts),
        first.tried,
    )
