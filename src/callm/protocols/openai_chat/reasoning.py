"""Reasoning on the OpenAI-compatible wire: what servers send, and what they want back.

Reading a reply (streamed or not), one rule: a message that carries ``reasoning_details``
(OpenRouter, and servers such as Snowflake Cortex that send reasoning nowhere else) gives
one :class:`Reasoning` per entry — ``reasoning.text`` its text and ``signature``,
``reasoning.summary`` its summary, ``reasoning.encrypted`` its ``data`` — each keeping the
entry itself in ``Reasoning.detail``; the plain ``reasoning`` string OpenRouter sends
beside them repeats their text and is not read again. Otherwise ``reasoning_content``
(DeepSeek, llama.cpp) or ``reasoning`` (vLLM, Ollama, Groq) is one Reasoning.

Sending history back follows the provider entry's ``Quirks.reasoning_back``:

- ``"reasoning_details"`` (OpenRouter): every assistant turn carries the entries it came
  with, verbatim (``format``, ``index``, signatures and encrypted data included) — what
  multi-turn tool calling through OpenRouter needs, and what a Gemini 3 model behind it
  answers 400 "Function call is missing a thought_signature" without.
- ``"reasoning_content"`` (DeepSeek's thinking mode): an assistant turn that made tool
  calls carries its reasoning text as ``reasoning_content`` — DeepSeek answers 400 without
  it, and ignores it on turns without tool calls, where it is left out.
- ``"none"``: no reasoning goes back (most servers neither need nor accept it).

Reasoning from another protocol (an Anthropic signature, a Gemini thought signature) never
goes to an OpenAI-compatible server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..._core.json import get_str
from ..._core.quirks import ReasoningBack
from ..._core.types import Message, Reasoning, ToolCall

PROTOCOL = "openai_chat"
# The text-bearing field of each reasoning_details entry type.
_TEXT_FIELDS = {"reasoning.text": "text", "reasoning.summary": "summary"}
_STREAMED_FIELDS = ("text", "summary", "data", "signature")


def from_details(details: Sequence[object]) -> list[Reasoning]:
    """One Reasoning per ``reasoning_details`` entry, the entry kept verbatim."""
    return [_from_detail(d) for d in details if isinstance(d, Mapping)]


def _from_detail(detail: Mapping[str, object]) -> Reasoning:
    field = _TEXT_FIELDS.get(str(detail.get("type")))
    text = detail.get(field) if field else None
    signature, ident, data = detail.get("signature"), detail.get("id"), detail.get("data")
    return Reasoning(
        text if isinstance(text, str) else "",
        signature=signature if isinstance(signature, str) and signature else None,
        id=ident if isinstance(ident, str) and ident else None,
        data=data if isinstance(data, str) and data else None,
        protocol=PROTOCOL,
        detail=dict(detail),
    )


def message_reasoning(message: Mapping[str, object]) -> list[Reasoning]:
    """The Reasoning parts of a non-streamed message (see the module notes)."""
    details = message.get("reasoning_details")
    if isinstance(details, list) and details:
        return from_details(details)
    text = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(text, str) and text:
        return [Reasoning(text, protocol=PROTOCOL)]
    return []


def merge_fragment(slots: dict[int, dict[str, object]], fragment: Mapping[str, object]) -> str:
    """Fold one streamed ``reasoning_details`` fragment into the entry its ``index`` names;
    the text (or summary) it adds is returned, to be shown as it arrives."""
    index = fragment.get("index")
    slot = slots.setdefault(index if isinstance(index, int) else len(slots), {})
    shown = ""
    for key, value in fragment.items():
        if key in _STREAMED_FIELDS and isinstance(value, str):
            slot[key] = get_str(slot, key) + value
            if key in ("text", "summary"):
                shown += value
        elif value is not None or key not in slot:
            slot[key] = value
    return shown


def back_fields(message: Message, mode: ReasoningBack) -> dict[str, object]:
    """The fields an assistant turn carries its reasoning back in, under ``mode``."""
    if mode == "none":
        return {}
    own = [p for p in message.content if isinstance(p, Reasoning) and p.protocol == PROTOCOL]
    if mode == "reasoning_details":
        details = [dict(p.detail) for p in own if p.detail is not None]
        return {"reasoning_details": details} if details else {}
    text = "".join(p.text for p in own)
    made_calls = any(isinstance(p, ToolCall) for p in message.content)
    return {"reasoning_content": text} if text and made_calls else {}
