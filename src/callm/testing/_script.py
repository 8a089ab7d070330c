"""The values a test scripts the fake server with, and the record of what it received.

``Reply`` says what the model answers, ``Fault`` says how the server misbehaves, and
``RecordedRequest`` is what the server saw. All are frozen: a queued item cannot change
under the server's feet.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Literal, TypedDict, Unpack

FaultKind = Literal[
    "status",
    "disconnect",
    "drop_mid_stream",
    "stream_error",
    "slow_first_byte",
    "stall",
    "malformed_json",
]

_CONTEXT_LENGTH_MESSAGE = (
    "This model's maximum context length is 128000 tokens. However, your messages resulted "
    "in 130000 tokens. Please reduce the length of the messages."
)


@dataclass(frozen=True, slots=True)
class FakeToolCall:
    """A tool call the fake model makes.

    ``arguments`` given as a dict is sent as compact JSON; a str is sent verbatim, so a test
    can send malformed JSON arguments on purpose.
    """

    name: str
    arguments: Mapping[str, object] | str = field(default_factory=dict)
    id: str | None = None

    def arguments_json(self) -> str:
        """The ``function.arguments`` string exactly as it goes on the wire."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted model answer.

    Every field has a wire-faithful default: ``chunks`` splits ``text`` into word fragments
    (whitespace kept, so the fragments join back to ``text``; explicit ``chunks`` are the
    content of non-streaming answers too); ``finish_reason`` is
    ``"tool_calls"`` when there are tool calls, else ``"stop"``; ``usage`` is computed from
    the request and the fragments; ``model`` echoes the request's model. ``reasoning`` is
    sent as ``reasoning_content`` (DeepSeek style). ``usage_on_finish_chunk`` puts a stream's
    usage on the ``finish_reason`` chunk instead of a separate ``"choices":[]`` chunk.
    """

    text: str = ""
    _: KW_ONLY
    chunks: Sequence[str] | None = None
    tool_calls: Sequence[FakeToolCall] = ()
    reasoning: str | None = None
    refusal: str | None = None
    finish_reason: str | None = None
    usage: Mapping[str, object] | None = None
    model: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    usage_on_finish_chunk: bool = False

    def full_text(self) -> str:
        """The whole content: the joined ``chunks`` when given, else ``text``."""
        return "".join(self.chunks) if self.chunks is not None else self.text

    def fragments(self) -> list[str]:
        """The content fragments a stream sends: ``chunks`` if given, else ``text`` split."""
        return list(self.chunks) if self.chunks is not None else split_fragments(self.text)

    def iter_fragments(self) -> Iterator[str]:
        """:meth:`fragments` one at a time: a long reply is never held as a list of words."""
        if self.chunks is not None:
            return iter(self.chunks)
        return (m.group() for m in fragment_matches(self.text))

    def fragment_count(self) -> int:
        """``len(self.fragments())``, counted without making the list."""
        if self.chunks is not None:
            return len(self.chunks)
        return sum(1 for _ in fragment_matches(self.text))


class StatusOptions(TypedDict, total=False):
    """The keyword arguments :meth:`Fault.status` takes besides its code and message."""

    type: str | None
    code_str: str | None
    param: str | None
    headers: Mapping[str, str] | None
    retry_after_ms: float | None
    should_retry: bool | None


@dataclass(frozen=True, slots=True)
class Fault:
    """A way for the fake server to misbehave on one request; build one with a classmethod.

    Faults that send a body (``drop_mid_stream``, ``stream_error``, ``slow_first_byte``,
    ``stall``, ``malformed_json``) take their content from ``reply`` when given, else from
    the offline model. ``after_chunks`` counts SSE ``data:`` events, ``[DONE]`` excluded;
    a count past the end of the stream means "just before ``[DONE]``".
    """

    kind: FaultKind
    status_code: int = 200
    error: Mapping[str, object] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    after_chunks: int = 0
    seconds: float = 0.0
    reply: Reply | None = None
    raw: bool = False  # stream_error on Gemini: un-framed JSON lines, not a data: event

    @classmethod
    def status(
        cls,
        code: int,
        message: str = "The fake server was told to fail this request.",
        *,
        type: str | None = None,
        code_str: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        retry_after_ms: float | None = None,
        should_retry: bool | None = None,
    ) -> Fault:
        """Answer with HTTP ``code`` and an OpenAI-shaped ``{"error": {...}}`` body.

        ``retry_after`` (seconds), ``retry_after_ms`` and ``should_retry`` become the
        ``retry-after``, ``retry-after-ms`` and ``x-should-retry`` headers.
        """
        all_headers = dict(headers or {})
        if retry_after is not None:
            all_headers["retry-after"] = _number(retry_after)
        if retry_after_ms is not None:
            all_headers["retry-after-ms"] = _number(retry_after_ms)
        if should_retry is not None:
            all_headers["x-should-retry"] = "true" if should_retry else "false"
        error = {
            "message": message,
            "type": type or _default_error_type(code),
            "param": param,
            "code": code_str,
        }
        return cls("status", status_code=code, error=error, headers=all_headers)

    @classmethod
    def rate_limit(cls, retry_after: float | None = None, **kwargs: Unpack[StatusOptions]) -> Fault:
        """429 ``rate_limit_exceeded``, optionally with a ``retry-after`` header."""
        message = "Rate limit reached for requests on the fake server. Please try again in 1s."
        kwargs.setdefault("type", "requests")
        kwargs.setdefault("code_str", "rate_limit_exceeded")
        return cls.status(429, message, retry_after=retry_after, **kwargs)

    @classmethod
    def server_error(cls, status: int = 500, **kwargs: Unpack[StatusOptions]) -> Fault:
        """A 5xx ``server_error``."""
        message = "The server had an error while processing your request. Sorry about that!"
        kwargs.setdefault("type", "server_error")
        return cls.status(status, message, **kwargs)

    @classmethod
    def overloaded(cls, **kwargs: Unpack[StatusOptions]) -> Fault:
        """503: the engine is overloaded."""
        message = "The engine is currently overloaded, please try again later."
        kwargs.setdefault("type", "server_error")
        return cls.status(503, message, **kwargs)

    @classmethod
    def unauthorized(cls) -> Fault:
        """401 ``invalid_api_key``."""
        return cls.status(401, _INVALID_KEY_MESSAGE, code_str="invalid_api_key")

    @classmethod
    def context_length(cls) -> Fault:
        """400 ``context_length_exceeded`` with OpenAI's real message text."""
        return cls.status(
            400, _CONTEXT_LENGTH_MESSAGE, param="messages", code_str="context_length_exceeded"
        )

    @classmethod
    def not_found(cls, model: str = "gpt-missing") -> Fault:
        """404 ``model_not_found``."""
        return cls.status(404, model_not_found_message(model), code_str="model_not_found")

    @classmethod
    def disconnect(cls) -> Fault:
        """Close the connection without sending any response at all."""
        return cls("disconnect")

    @classmethod
    def drop_mid_stream(cls, after_chunks: int, *, reply: Reply | None = None) -> Fault:
        """Send ``after_chunks`` SSE events, then close the connection mid-body.

        The chunked body is never terminated, so the client sees a broken stream. On a
        non-streaming request, the headers and half the JSON body are sent instead.
        """
        return cls("drop_mid_stream", after_chunks=after_chunks, reply=reply)

    @classmethod
    def stream_error(
        cls,
        after_chunks: int,
        message: str = "The server had an error while processing your request.",
        *,
        status: int = 500,
        raw: bool = False,
        reply: Reply | None = None,
    ) -> Fault:
        """Send ``after_chunks`` events, then an error inside the stream, then end it.

        The error is what each API sends mid-stream, typed as its answer with HTTP
        ``status`` would be: OpenAI Chat a ``data: {"error": {...}}`` chunk then ``[DONE]``
        (a status other than 500 goes in ``code``, as OpenRouter and vLLM send it);
        Anthropic an ``event: error`` (``overloaded_error`` for 529, ``rate_limit_error``
        for 429 …); Responses a ``response.failed`` (``rate_limit_exceeded``,
        ``server_error`` …); Gemini an error object with Google's status name — with
        ``raw=True`` written as pretty-printed JSON lines without ``data:`` framing, as
        Gemini and Vertex do. On a non-streaming request it is a plain HTTP ``status``
        error with ``message``.
        """
        error: dict[str, object] = {"message": message, "type": _default_error_type(status)}
        error["param"] = None
        error["code"] = None if status == 500 else status
        return cls(
            "stream_error",
            status_code=status,
            after_chunks=after_chunks,
            error=error,
            reply=reply,
            raw=raw,
        )

    @classmethod
    def slow_first_byte(cls, seconds: float, *, reply: Reply | None = None) -> Fault:
        """Wait ``seconds`` before sending the status line, then answer normally."""
        return cls("slow_first_byte", seconds=seconds, reply=reply)

    @classmethod
    def stall(cls, after_chunks: int, seconds: float, *, reply: Reply | None = None) -> Fault:
        """Send ``after_chunks`` events, go silent for ``seconds``, then finish normally.

        On a non-streaming request, the pause falls in the middle of the JSON body.
        """
        return cls("stall", after_chunks=after_chunks, seconds=seconds, reply=reply)

    @classmethod
    def malformed_json(cls, after_chunks: int = 0, *, reply: Reply | None = None) -> Fault:
        """A 200 whose JSON body is truncated; in a stream, a ``data: {not json`` event.

        The stream sends ``after_chunks`` good events first and ``[DONE]`` after the bad one.
        """
        return cls("malformed_json", after_chunks=after_chunks, reply=reply)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake server received it; header names are lower-case."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any  # the decoded body, as a test reads it: server.requests[-1].json["model"]


def split_fragments(text: str) -> list[str]:
    """Split text into word fragments that keep their whitespace, like model tokens.

    ``"".join(split_fragments(t)) == t`` always holds.
    """
    return _FRAGMENT.findall(text)


_FRAGMENT = re.compile(r"\s*\S+|\s+")


def fragment_matches(text: str) -> Iterator[re.Match[str]]:
    """The fragments of :func:`split_fragments`, found one at a time."""
    return _FRAGMENT.finditer(text)


_INVALID_KEY_MESSAGE = (
    "Incorrect API key provided. You can find your API key at "
    "https://platform.openai.com/account/api-keys."
)


def invalid_key_message() -> str:
    """The 401 message OpenAI sends for a wrong key."""
    return _INVALID_KEY_MESSAGE


def model_not_found_message(model: str) -> str:
    """OpenAI's recorded 404 message for an unknown model."""
    return f"The model `{model}` does not exist or you do not have access to it."


def _default_error_type(code: int) -> str:
    return "server_error" if code >= 500 else "invalid_request_error"


def _number(value: float) -> str:
    # Headers read "2", not "2.0", when the value is whole.
    return str(int(value)) if float(value).is_integer() else str(value)
