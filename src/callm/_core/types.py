"""The unified value types: messages and their parts, requests, responses, stream events.

Every type is a frozen, slotted dataclass. Parts carry a ``kind`` discriminator and stream
events a ``type`` discriminator so code can ``match`` on them exhaustively.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from .options import ResponseFormat, ToolChoice, response_format_of, tool_choice_of

if TYPE_CHECKING:
    from decimal import Decimal

Role: TypeAlias = Literal["system", "developer", "user", "assistant", "tool"]
# How closely a vision model looks at an image (OpenAI's ``detail``).
ImageDetail: TypeAlias = Literal["auto", "low", "high"]
FinishReason: TypeAlias = Literal[
    "stop", "length", "tool_calls", "content_filter", "refusal", "error"
]


@dataclass(frozen=True, slots=True)
class Text:
    """A piece of plain text."""

    text: str
    kind: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class Image:
    """An image given by URL: ``https://…``, a provider file URI, or a base64 ``data:`` URL.

    Build one with :meth:`from_path`, :meth:`from_url` or :meth:`from_bytes`; a
    ``pathlib.Path`` in a user message becomes one too.
    """

    url: str
    detail: ImageDetail | None = None
    kind: Literal["image"] = "image"

    @classmethod
    def from_bytes(
        cls, data: bytes, media_type: str | None = None, *, detail: ImageDetail | None = None
    ) -> Image:
        """An image sent inline as a base64 ``data:`` URL; the type is read from the bytes
        (PNG, JPEG, GIF, WebP) unless ``media_type`` is given."""
        from .media import image_type

        url = _data_url(data, image_type(data, media_type, "the image bytes"))
        return cls(url=url, detail=detail)

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], detail: ImageDetail | None = None) -> Image:
        """An image file, sent inline; its type comes from its bytes, else its suffix."""
        from .media import read_file, supported_image

        data, media_type = read_file(path)
        return cls(_data_url(data, supported_image(media_type, repr(str(path)))), detail)

    @classmethod
    def from_url(cls, url: str, detail: ImageDetail | None = None) -> Image:
        """An image the provider fetches itself (``https://…``, ``gs://…``, a file URI)."""
        from .media import check_url

        return cls(check_url(url, "Image"), detail)

    def __repr__(self) -> str:
        # Inline images are large base64 blobs: never dump them into logs or reprs.
        shown = self.url if not self.url.startswith("data:") else self.url[:30] + "…"
        return f"Image(url={shown!r}, detail={self.detail!r})"


@dataclass(frozen=True, slots=True)
class Document:
    """A document (a PDF, a text file …) given by URL or as a base64 ``data:`` URL.

    Build one with :meth:`from_path`, :meth:`from_url` or :meth:`from_bytes`; a
    ``pathlib.Path`` to a non-image file in a user message becomes one too.
    """

    url: str
    media_type: str | None = None
    title: str | None = None
    kind: Literal["document"] = "document"

    @classmethod
    def from_bytes(
        cls, data: bytes, media_type: str | None = None, *, title: str | None = None
    ) -> Document:
        """A document sent inline as a base64 ``data:`` URL; without ``media_type`` the
        bytes decide (a PDF by its header, else UTF-8 text as ``text/plain``)."""
        from .media import document_type

        media_type = document_type(data, media_type, "the document bytes")
        return cls(url=_data_url(data, media_type), media_type=media_type, title=title)

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], title: str | None = None) -> Document:
        """A file sent inline; its type comes from its bytes, else its suffix. The file
        name is the title (OpenAI needs a file name; Anthropic shows it to the model)."""
        from .media import read_file

        data, media_type = read_file(path)
        name = title if title is not None else os.path.basename(os.fspath(path))
        return cls(_data_url(data, media_type), media_type, name)

    @classmethod
    def from_url(
        cls, url: str, media_type: str | None = None, title: str | None = None
    ) -> Document:
        """A document the provider fetches itself; the type is guessed from the URL's
        suffix when not given (Gemini needs one)."""
        from .media import check_url, guess_from_name

        check_url(url, "Document")
        return cls(url, media_type or guess_from_name(url), title)

    def __repr__(self) -> str:
        shown = self.url if not self.url.startswith("data:") else self.url[:40] + "…"
        return f"Document(url={shown!r}, media_type={self.media_type!r}, title={self.title!r})"


def _data_url(data: bytes, media_type: str) -> str:
    import base64

    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def attachment(path: str | os.PathLike[str]) -> Image | Document:
    """A file as the part that fits it: an :class:`Image` for an image, else a
    :class:`Document`."""
    from .media import read_file, supported_image

    data, media_type = read_file(path)
    if media_type.startswith("image/"):
        return Image(_data_url(data, supported_image(media_type, repr(str(path)))))
    return Document(_data_url(data, media_type), media_type, os.path.basename(os.fspath(path)))


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A request from the model to call a tool.

    ``arguments`` is the parsed JSON object. When the model sent arguments that are not a
    JSON object, ``arguments`` is empty, ``invalid_arguments`` is true and ``raw_arguments``
    keeps the text exactly as received, so nothing is lost.
    """

    id: str
    name: str
    arguments: Mapping[str, object]
    raw_arguments: str | None = None
    invalid_arguments: bool = False
    kind: Literal["tool_call"] = "tool_call"


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The result of a tool call, sent back to the model."""

    tool_call_id: str
    content: str
    name: str | None = None
    is_error: bool = False
    kind: Literal["tool_result"] = "tool_result"


@dataclass(frozen=True, slots=True)
class Reasoning:
    """The model's reasoning ("thinking") text, where the provider exposes it.

    ``signature``, ``id`` and ``data`` are the provider's opaque companions (Anthropic's
    thinking signature or redacted thinking, Gemini's thought signature, OpenAI's reasoning
    item id and encrypted content). ``protocol`` names the wire protocol they came from:
    they are sent back unchanged to that protocol only, since no provider accepts another's
    signatures; reasoning from elsewhere stays out of the request. ``detail`` is the
    provider's own record of it where one must go back verbatim (an OpenRouter
    ``reasoning_details`` entry, with its ``format`` and ``index``).
    """

    text: str
    signature: str | None = None
    id: str | None = None
    data: str | None = None
    protocol: str | None = None
    detail: Mapping[str, object] | None = None
    kind: Literal["reasoning"] = "reasoning"


@dataclass(frozen=True, slots=True)
class Refusal:
    """The model declined to answer; ``text`` is its explanation."""

    text: str
    kind: Literal["refusal"] = "refusal"


@dataclass(frozen=True, slots=True)
class RawPart:
    """Content callm does not model (server-side tool calls, citations …), kept as sent.

    ``protocol`` names the wire protocol it came from; sent back to that protocol it is
    passed through verbatim, and any other protocol refuses it with a clear error.
    """

    protocol: str
    type: str
    data: Mapping[str, object]
    kind: Literal["raw"] = "raw"


Part: TypeAlias = Text | Image | Document | ToolCall | ToolResult | Reasoning | Refusal | RawPart


@dataclass(frozen=True, slots=True)
class Message:
    """One role-tagged message of a conversation."""

    role: Role
    content: tuple[Part, ...]
    name: str | None = None
    # A prompt-cache breakpoint after this message (Anthropic cache_control; ignored where
    # caching is automatic).
    cache: bool = False

    @classmethod
    def system(cls, text: str) -> Message:
        return cls("system", (Text(text),))

    @classmethod
    def user(cls, *content: str | Part | os.PathLike[str]) -> Message:
        """A user message; a ``pathlib.Path`` becomes an Image or Document by its type."""
        return cls("user", _parts(content))

    @classmethod
    def assistant(cls, *content: str | Part) -> Message:
        return cls("assistant", _parts(content))

    @classmethod
    def tool(cls, tool_call_id: str, content: str, *, is_error: bool = False) -> Message:
        return cls("tool", (ToolResult(tool_call_id, content, is_error=is_error),))

    @property
    def text(self) -> str:
        """The concatenated text parts."""
        return "".join(p.text for p in self.content if isinstance(p, Text))


def _parts(content: tuple[str | Part | os.PathLike[str], ...]) -> tuple[Part, ...]:
    # A string is always text, never a file name: only a Path (os.PathLike) is read.
    return tuple(
        Text(c) if isinstance(c, str) else attachment(c) if isinstance(c, os.PathLike) else c
        for c in content
    )


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call: a name, a description and a JSON Schema for its input."""

    name: str
    description: str = ""
    parameters: Mapping[str, object] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    strict: bool | None = None
    # The Python callable behind the tool, when it came from a function (see callm.tool):
    # Client.run() calls it with the model's arguments.
    function: Callable[..., object] | None = field(default=None, compare=False, repr=False)

    def __call__(self, *args: object, **kwargs: object) -> Any:  # what the function returns
        """Call the function behind the tool, so ``@callm.tool`` leaves it callable."""
        if self.function is None:
            raise TypeError(f"tool {self.name!r} was given as a schema: it has no function")
        return self.function(*args, **kwargs)


@dataclass(frozen=True, slots=True)
class Request:
    """A provider-neutral chat request. ``model`` is the provider's own model name."""

    model: str
    messages: tuple[Message, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    n: int | None = None
    user: str | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    response_format: ResponseFormat | None = None
    stream: bool = False
    # Prompt caching: True places cache breakpoints (Anthropic) and a derived
    # prompt_cache_key (OpenAI); a string is used as the cache key itself.
    cache: bool | str | None = None
    # Provider-specific body fields, merged into the JSON body as given (they win on clash).
    extra_body: Mapping[str, object] = field(default_factory=dict)
    extra_headers: Mapping[str, str] = field(default_factory=dict)

    def with_model(self, model: str) -> Request:
        """This request for ``model``: the draft the engine addresses to each model it tries.

        Spelled out rather than ``dataclasses.replace``, which costs twice as much on the path
        every call takes; tests/test_types.py checks that it carries every field.
        """
        return Request(
            model=model,
            messages=self.messages,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            stop=self.stop,
            seed=self.seed,
            n=self.n,
            user=self.user,
            tools=self.tools,
            tool_choice=self.tool_choice,
            response_format=self.response_format,
            stream=self.stream,
            cache=self.cache,
            extra_body=self.extra_body,
            extra_headers=self.extra_headers,
        )

    def __post_init__(self) -> None:
        # A Request made by hand may give these as callers pass them (a tool's name, an
        # OpenAI-style dict): read once here, so every protocol sees the typed value.
        choice, fmt = self.tool_choice, self.response_format
        if choice is not None and not isinstance(choice, ToolChoice):
            object.__setattr__(self, "tool_choice", tool_choice_of(choice))
        if fmt is not None and not isinstance(fmt, ResponseFormat):
            object.__setattr__(self, "response_format", response_format_of(fmt))


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call; usages add with ``+``.

    ``reported`` is False when the provider said nothing of its usage (a stream that ended
    without a usage chunk, a body without ``usage``): the counts are then unknown — the
    zeros are no measurement — and the reply's ``cost`` is None, never a made-up $0.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    reported: bool = True

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.reported and other.reported,
        )


UNREPORTED = Usage(reported=False)  # the usage of a reply whose provider reported none


@dataclass(frozen=True, slots=True)
class Response:
    """A model's reply, normalised across providers. ``raw`` is the provider's JSON."""

    id: str
    model: str
    provider: str
    content: tuple[Part, ...]
    finish_reason: FinishReason | None
    usage: Usage
    raw: Any = field(default=None, repr=False)
    native_finish_reason: str | None = None
    request_id: str | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    cost: Decimal | None = None
    # Further choices when the request asked for n > 1 (each a Response of its own).
    choices: tuple[Response, ...] = field(default=(), repr=False)
    # Every "provider/model" tried for this reply, in order; the last one answered.
    tried: tuple[str, ...] = ()
    # True when the reply came from callm's response cache (and cost nothing).
    cached: bool = False
    # The validated structured output when the call asked for ``output=`` (else None).
    parsed: Any = field(default=None, repr=False)
    # Client.run() and conversations: every message of the exchange, this reply included.
    transcript: tuple[Message, ...] = field(default=(), repr=False)

    @property
    def text(self) -> str:
        """The reply text (all text parts joined)."""
        return "".join(p.text for p in self.content if isinstance(p, Text))

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [p for p in self.content if isinstance(p, ToolCall)]

    @property
    def reasoning(self) -> str | None:
        """The reasoning text, or None when the provider showed none (signatures alone)."""
        text = "".join(p.text for p in self.content if isinstance(p, Reasoning))
        return text or None

    @property
    def refusal(self) -> str | None:
        parts = [p.text for p in self.content if isinstance(p, Refusal)]
        return "".join(parts) if parts else None

    def to_message(self) -> Message:
        """This reply as an assistant message, ready to append to the history."""
        return Message("assistant", self.content)


def priced(response: Response, cost: Decimal | None, tried: tuple[str, ...]) -> Response:
    """``response`` with its cost and the models tried: a new Response, built directly.

    Every reply gets one on its way back, so this calls the constructor with every field
    in order instead of ``dataclasses.replace`` (which is several times slower).
    """
    r = response
    return Response(
        r.id,
        r.model,
        r.provider,
        r.content,
        r.finish_reason,
        r.usage,
        r.raw,
        r.native_finish_reason,
        r.request_id,
        r.latency_s,
        r.ttft_s,
        cost,
        r.choices,
        tried,
        r.cached,
        r.parsed,
        r.transcript,
    )


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str
    type: Literal["reasoning"] = "reasoning"


@dataclass(frozen=True, slots=True)
class RefusalDelta:
    text: str
    type: Literal["refusal"] = "refusal"


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call as it streams in; joined per ``index``."""

    index: int
    id: str | None
    name: str | None
    arguments: str
    type: Literal["tool_call_delta"] = "tool_call_delta"


@dataclass(frozen=True, slots=True)
class ToolCallEvent:
    """A tool call, complete, emitted once all of its fragments have arrived."""

    tool_call: ToolCall
    type: Literal["tool_call"] = "tool_call"


@dataclass(frozen=True, slots=True)
class UsageEvent:
    usage: Usage
    type: Literal["usage"] = "usage"


@dataclass(frozen=True, slots=True)
class FinishEvent:
    finish_reason: FinishReason | None
    type: Literal["finish"] = "finish"


@dataclass(frozen=True, slots=True)
class ToolResultEvent:
    """Client.run_stream(): a tool was called and this is what goes back to the model."""

    call: ToolCall
    result: ToolResult
    type: Literal["tool_result"] = "tool_result"


@dataclass(frozen=True, slots=True)
class PartialOutput:
    """Streamed structured output: the object parsed so far (a dict, then the typed value)."""

    value: Any
    complete: bool = False
    type: Literal["partial_output"] = "partial_output"


StreamEvent: TypeAlias = (
    TextDelta
    | ReasoningDelta
    | RefusalDelta
    | ToolCallDelta
    | ToolCallEvent
    | UsageEvent
    | FinishEvent
    | ToolResultEvent
    | PartialOutput
)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A model a provider offers, as listed by its models endpoint."""

    id: str
    provider: str
    created: int | None = None
    owned_by: str | None = None
    raw: Any = field(default=None, repr=False)
