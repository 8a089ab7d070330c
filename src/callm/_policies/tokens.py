"""Counting the input tokens of a request without sending it.

Three ways, best first (the client picks): the provider's own counting endpoint (Anthropic,
Gemini); OpenAI's tokenizer applied locally with the chat formula from OpenAI's cookbook,
for OpenAI models whose tokenizer data is on disk (:mod:`callm._tokenizer`); else
:func:`estimate`, a documented conservative estimate. ``TokenCount.method`` says which.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, assert_never

from .._core.types import (
    Document,
    Image,
    Message,
    Part,
    RawPart,
    Reasoning,
    Refusal,
    Request,
    Text,
    ToolCall,
    ToolResult,
)

if TYPE_CHECKING:
    from tiktoken import Encoding

# Tokenizers average 3.5 to 4.5 characters a token on English and code; dividing by 3 errs
# on the side of too many, which is the safe side for fitting a context window.
CHARS_PER_TOKEN = 3
PER_MESSAGE = 4  # role markers and separators
PER_IMAGE = 1_000  # a generous flat charge: image tokens depend on size and detail
ESTIMATE_METHOD = "estimate: ceil(characters / 3) + 4 a message + 1000 an image or document"

# OpenAI's cookbook ("How to count tokens with tiktoken") checked this framing against the
# API's prompt_tokens for gpt-3.5-turbo, gpt-4 and gpt-4o: 3 tokens a message, plus its
# role, name and content; a name 1 more; 3 to prime the reply.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
# OpenAI does not publish how tool definitions are rendered; the cookbook measured about
# 7-10 tokens to open each and 12 to close the list. The definitions' JSON, tokenised here,
# is longer than that rendering, so the count errs high.
TOKENS_PER_TOOL = 10
TOOLS_OVERHEAD = 12
OPENAI_PROTOCOLS = frozenset({"openai_chat", "openai_responses"})


@dataclass(frozen=True, slots=True)
class TokenCount:
    """The input tokens of a request, whether the count is exact, and how it was made.

    ``method`` is ``"<provider> token counting endpoint"`` (exact), ``"local tokenizer:
    tiktoken <encoding>"`` (exact for text; what it had to estimate follows in
    parentheses, and then ``exact`` is False) or ``"estimate: …"`` (conservative).
    """

    tokens: int
    exact: bool
    method: str


def estimate(request: Request) -> TokenCount:
    """A conservative local estimate (it overcounts rather than undercounts)."""
    chars, tokens = 0, 0
    for message in request.messages:
        tokens += PER_MESSAGE
        part_chars, part_tokens = _message_size(message)
        chars += part_chars
        tokens += part_tokens
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description) + len(json.dumps(tool.parameters))
    if request.response_format:
        chars += len(json.dumps(request.response_format.as_json(), default=str))
    return TokenCount(tokens + math.ceil(chars / CHARS_PER_TOKEN), False, ESTIMATE_METHOD)


def _message_size(message: Message) -> tuple[int, int]:
    chars, tokens = 0, 0
    for part in message.content:
        match part:
            case Text(text=text) | Reasoning(text=text) | Refusal(text=text):
                chars += len(text)
            case ToolCall():
                chars += len(part.name) + len(json.dumps(dict(part.arguments)))
            case ToolResult(content=content):
                chars += len(content)
            case Image() | Document():
                tokens += PER_IMAGE
            case RawPart(data=data):
                chars += len(json.dumps(data, default=str))
    return chars, tokens


def local_count(model: str, request: Request) -> TokenCount:
    """The best count available without a network call, for ``"provider/model"``.

    OpenAI's tokenizer where the model is an OpenAI model and the tokenizer's data is on
    disk, else :func:`estimate`.
    """
    from .._config.providers import BUILTIN

    provider, _, name = model.partition("/")
    spec = BUILTIN.get(provider)
    # A provider callm does not know is OpenAI-compatible unless configured otherwise.
    return count_locally(spec.protocol if spec else "openai_chat", name, request)


def count_locally(protocol: str, model: str, request: Request) -> TokenCount:
    """:func:`local_count` for a provider-side ``model`` spoken to over ``protocol``."""
    if protocol not in OPENAI_PROTOCOLS:
        return estimate(request)
    from . import tokenizer as _tokenizer

    # Aggregators name OpenAI's models "openai/gpt-4o"; other vendors' models stay estimated.
    encoding_name = _tokenizer.encoding_name(model.removeprefix("openai/"))
    if encoding_name is None:
        return estimate(request)
    encoding = _tokenizer.load(encoding_name)
    if encoding is None:
        guess = estimate(request)
        return replace(guess, method=f"{guess.method} (tiktoken {encoding_name} data not on disk)")
    return tokenizer_count(encoding, request)


def tokenizer_count(encoding: Encoding, request: Request) -> TokenCount:
    """The cookbook's chat formula with ``encoding``; non-text parts get the estimate's charges."""
    tally = _Tally(lambda text: len(encoding.encode_ordinary(text)))
    for message in request.messages:
        tally.message(message)
    for tool in request.tools:
        schema = json.dumps(tool.parameters)
        tally.add("tool definitions", TOKENS_PER_TOOL, tool.name, tool.description, schema)
    if request.tools:
        tally.add("tool definitions", TOOLS_OVERHEAD)
    if request.response_format:
        schema = json.dumps(request.response_format.as_json(), default=str)
        tally.add("output schema", 0, schema)
    method = f"local tokenizer: tiktoken {encoding.name}"
    if tally.estimated:
        method += f" (estimated: {', '.join(sorted(tally.estimated))})"
    return TokenCount(tally.tokens, not tally.estimated, method)


@dataclass(slots=True)
class _Tally:
    """Tokens counted so far, and the kinds of content whose count is only an estimate."""

    count: Callable[[str], int]
    tokens: int = REPLY_PRIMING
    estimated: set[str] = field(default_factory=set)

    def add(self, estimated_kind: str, overhead: int, *texts: str) -> None:
        self.estimated.add(estimated_kind)
        self.tokens += overhead + sum(self.count(text) for text in texts)

    def message(self, message: Message) -> None:
        self.tokens += TOKENS_PER_MESSAGE + self.count(message.role)
        if message.name:
            self.tokens += TOKENS_PER_NAME + self.count(message.name)
        texts = [part.text for part in message.content if isinstance(part, Text)]
        # An assistant's texts travel joined; other roles' as separate parts, whose
        # framing OpenAI does not publish.
        if len(texts) > 1 and message.role != "assistant":
            self.estimated.add("multi-part text")
        self.tokens += self.count("".join(texts))
        for part in message.content:
            self.part(part)

    def part(self, part: Part) -> None:
        match part:
            case Text():
                pass  # counted with the message
            case Image():
                self.add("images", PER_IMAGE)
            case Document():
                self.add("documents", PER_IMAGE)
            case ToolCall():
                arguments = json.dumps(dict(part.arguments))
                self.add("tool calls", 0, part.id, part.name, arguments)
            case ToolResult():
                self.add("tool results", 0, part.tool_call_id, part.content)
            case Reasoning(text=text) | Refusal(text=text):
                self.add(part.kind, 0, text)
            case RawPart(data=data):
                self.add("raw parts", 0, json.dumps(data, default=str))
            case _:
                assert_never(part)
