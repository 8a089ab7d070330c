"""OpenAI's legacy Completions API (``POST /v1/completions``), server side, for old callers.

A prompt in, text out: :func:`decode_request` reads the prompt as one user message (any
model answers it as a chat; none is called with a raw prompt), :func:`encode_response` and
:class:`StreamEncoder` write ``text_completion`` objects and chunks as the ``openai`` SDK's
``client.completions.create`` reads them, and errors use OpenAI's ``{"error": {...}}``
envelope.

Where the legacy API and a chat differ:

- ``max_tokens`` defaults to 16, as the legacy API's does, so an old caller gets the short
  answer it always got.
- ``suffix``, ``echo``, ``best_of`` > 1, token arrays and several prompts in one call have
  no chat equivalent and are refused with a 400 that says so; so is ``logprobs``, which no
  reply carries through.
- ``frequency_penalty``, ``presence_penalty`` and ``logit_bias`` mean the same in Chat
  Completions and travel in ``extra_body`` to an OpenAI-family upstream.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from ..._core.errors import CallmError, InvalidRequestError
from ..._core.types import (
    FinishEvent,
    FinishReason,
    Message,
    RefusalDelta,
    Request,
    Response,
    StreamEvent,
    TextDelta,
)
from .._shared.ingress import dumps
from .._shared.request import (
    optional_float,
    optional_int,
    optional_str,
    require_str,
    stop_sequences,
)
from .server import encode_error

# callm's finish reason as the legacy API names it (it knows no tool calls or refusals).
_FINISH = {"length": "length", "content_filter": "content_filter"}


def finish_reason(reason: FinishReason | None) -> str:
    return _FINISH.get(reason or "stop", "stop")


__all__ = ["StreamEncoder", "decode_request", "encode_error", "encode_response", "encode_usage"]

DEFAULT_MAX_TOKENS = 16  # the legacy API's own default
_PASSED_ON = ("frequency_penalty", "presence_penalty", "logit_bias")
_REFUSED = {
    "suffix": "suffix (insertion) is not supported: send the text before the gap as the prompt",
    "logprobs": "logprobs are not supported by this gateway's completions endpoint",
    "echo": "echo is not supported: the reply holds the completion only",
}

# --- the request --------------------------------------------------------------------------


def decode_request(body: Mapping[str, object], *, model: str | None = None) -> Request:
    """A Completions request body as a callm Request (bad input: InvalidRequestError)."""
    if not isinstance(body, Mapping):
        raise InvalidRequestError("the request body must be a JSON object")
    for field, message in _REFUSED.items():
        if body.get(field) not in (None, False):
            raise InvalidRequestError(message)
    best_of = optional_int(body.get("best_of"), "best_of", minimum=1)
    if best_of is not None and best_of > 1:
        raise InvalidRequestError("best_of > 1 is not supported: ask for n answers instead")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequestError("stream must be true or false")
    max_tokens = optional_int(body.get("max_tokens"), "max_tokens", minimum=1)
    n = optional_int(body.get("n"), "n", minimum=1)
    if n is not None and n > 1 and stream:
        raise InvalidRequestError("n > 1 cannot be streamed by this gateway: send n=1")
    return Request(
        model=model if model is not None else require_str(body.get("model"), "model"),
        messages=(Message.user(prompt_of(body.get("prompt"))),),
        max_tokens=DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens,
        temperature=optional_float(body.get("temperature"), "temperature"),
        top_p=optional_float(body.get("top_p"), "top_p"),
        stop=stop_sequences(body.get("stop"), "stop"),
        seed=optional_int(body.get("seed"), "seed"),
        n=n,
        user=optional_str(body.get("user"), "user"),
        stream=bool(stream),
        extra_body={k: body[k] for k in _PASSED_ON if body.get(k) is not None},
    )


def prompt_of(prompt: Any) -> str:
    """The one prompt, given as a string or a one-string array."""
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if isinstance(prompt, str):
        return prompt
    if prompt is None:
        raise InvalidRequestError("prompt is required: the text to complete")
    raise InvalidRequestError(
        "prompt must be a string (several prompts or token arrays in one call are not "
        "supported by this gateway: send one request per prompt)"
    )


# --- replies ------------------------------------------------------------------------------


def encode_usage(response: Response) -> dict[str, object]:
    usage = response.usage
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def _completion_id() -> str:
    return "cmpl-" + os.urandom(12).hex()


def _choice(response: Response, index: int) -> dict[str, object]:
    return {
        "text": response.text or response.refusal or "",
        "index": index,
        "logprobs": None,
        "finish_reason": finish_reason(response.finish_reason),
    }


def encode_response(response: Response, *, model: str) -> dict[str, object]:
    """The ``text_completion`` body of a reply (every choice when n > 1)."""
    choices = [_choice(response, 0)]
    choices += [_choice(extra, i) for i, extra in enumerate(response.choices, 1)]
    return {
        "id": _completion_id(),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": encode_usage(response),
        "system_fingerprint": None,
    }


class StreamEncoder:
    """One streamed reply as ``text_completion`` chunks, ending with ``[DONE]``: a chunk per
    text fragment, one with the finish reason, then usage when the caller asked for it."""

    def __init__(self, *, model: str, include_usage: bool = False) -> None:
        self.include_usage = include_usage
        self._finished = False
        self._head = (
            '{"id":'
            + dumps(_completion_id())
            + ',"object":"text_completion","created":'
            + str(int(time.time()))
            + ',"model":'
            + dumps(model)
            + ',"system_fingerprint":null,"choices":'
        )

    def _chunk(self, choices: str, tail: str = "") -> bytes:
        return f"data: {self._head}{choices}{tail}}}\n\n".encode()

    def _text(self, text: str) -> bytes:
        return self._chunk(
            '[{"text":' + dumps(text) + ',"index":0,"logprobs":null,"finish_reason":null}]'
        )

    def start(self) -> bytes:
        return b""  # the first chunk is the first text

    def encode(self, event: StreamEvent) -> bytes:
        match event:
            case TextDelta(text=text) | RefusalDelta(text=text):
                return self._text(text) if text else b""
            case FinishEvent(finish_reason=reason):
                return self._finish(finish_reason(reason))
        return b""  # tool calls and reasoning have no place in a text completion

    def _finish(self, reason: str) -> bytes:
        if self._finished:
            return b""
        self._finished = True
        return self._chunk(
            '[{"text":"","index":0,"logprobs":null,"finish_reason":' + dumps(reason) + "}]"
        )

    def finish(self, response: Response) -> bytes:
        out = self._finish(finish_reason(response.finish_reason))
        if self.include_usage:
            out += self._chunk("[]", ',"usage":' + dumps(encode_usage(response)))
        return out + b"data: [DONE]\n\n"

    def error(self, error: CallmError) -> bytes:
        """An ``error`` chunk after the stream began (the SDK raises on it)."""
        _, body = encode_error(error)
        return f"data: {dumps(body)}\n\n".encode()
