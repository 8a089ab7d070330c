"""``callm.providers``, the old name of ``callm.protocols``, still imports for one release.

Every module name it had and every public function or class of its four protocol modules
(as they stood before the layered layout) must still import, with a DeprecationWarning
that names the new place.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

from callm._core.endpoint import Endpoint
from callm._core.types import Message, Request
from callm.protocols.openai_responses.stream import ResponsesStreamDecoder

# The old module name -> the module that replaced it.
MOVED = {
    "openai_chat": "callm.protocols.openai_chat.client",
    "anthropic": "callm.protocols.anthropic.client",
    "gemini": "callm.protocols.gemini.client",
    "_openai_chat_stream": "callm.protocols.openai_chat.stream",
    "_anthropic_stream": "callm.protocols.anthropic.stream",
    "_gemini_stream": "callm.protocols.gemini.stream",
    "_responses_stream": "callm.protocols.openai_responses.stream",
    "_errors": "callm.protocols._shared.errors",
    "_openai_common": "callm.protocols._shared.openai",
    "_anthropic_schema": "callm.protocols.anthropic.schema",
    "_gemini_schema": "callm.protocols.gemini.schema",
    "_gemini_errors": "callm.protocols.gemini.errors",
}

# The public functions and classes of the old modules, read from the tree before the move.
OLD_PUBLIC = {
    "openai_chat": [
        "decode", "decode_failure", "decode_models", "encode", "encode_body",
        "encode_messages", "encode_models", "encode_response_format",
        "encode_text_completion", "encode_tool", "encode_tool_choice", "message_parts",
        "stream_decoder",
    ],
    "anthropic": [
        "cache_control", "decode", "decode_count_tokens", "decode_failure", "decode_models",
        "default_max_tokens", "encode", "encode_body", "encode_count_tokens",
        "encode_document", "encode_image", "encode_messages", "encode_models",
        "encode_response_format", "encode_tool", "encode_tool_choice", "parse_json",
        "place_cache_breakpoints", "stream_decoder",
    ],
    "gemini": [
        "decode", "decode_count_tokens", "decode_models", "encode", "encode_body",
        "encode_count_tokens", "encode_messages", "encode_models", "encode_tool",
        "encode_tool_choice", "stream_decoder",
    ],
    "openai_responses": [
        "decode", "decode_failure", "decode_models", "decode_usage", "encode", "encode_body",
        "encode_input", "encode_models", "encode_text_format", "encode_tool",
        "encode_tool_choice", "failure_error", "finish_reason_of", "native_finish_reason",
        "output_parts", "response_of", "stream_decoder", "tool_call_of",
    ],
}  # fmt: skip


def _forget_old_name() -> None:
    for name in [n for n in sys.modules if n.split(".")[:2] == ["callm", "providers"]]:
        del sys.modules[name]


@pytest.fixture
def providers() -> Iterator[ModuleType]:
    """``callm.providers`` imported afresh, its warning caught; forgotten again after."""
    _forget_old_name()
    with pytest.deprecated_call(match=r"callm\.protocols"):
        module = importlib.import_module("callm.providers")
    yield module
    _forget_old_name()


def test_importing_the_old_name_warns_and_names_the_new_one() -> None:
    _forget_old_name()
    with pytest.deprecated_call(match=r"callm\.providers is now callm\.protocols"):
        import callm.providers  # noqa: F401
    _forget_old_name()


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_old_module_name_imports_as_the_module_that_replaced_it(
    providers: ModuleType, old: str
) -> None:
    module = importlib.import_module(f"callm.providers.{old}")
    assert module is importlib.import_module(MOVED[old])


@pytest.mark.parametrize("old", sorted(OLD_PUBLIC))
def test_the_old_public_names_still_import(providers: ModuleType, old: str) -> None:
    module = importlib.import_module(f"callm.providers.{old}")
    missing = [name for name in OLD_PUBLIC[old] if not callable(getattr(module, name, None))]
    assert missing == []
    assert getattr(providers, old) is module


def test_old_names_still_work(providers: ModuleType) -> None:
    from callm.providers import anthropic, openai_responses

    request = Request("claude-x", (Message.user("hi"),), max_tokens=10)
    body = anthropic.encode_body(request)
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    endpoint = Endpoint("fake", "openai_responses", "http://127.0.0.1:9", {})
    assert isinstance(openai_responses.stream_decoder(endpoint, None), ResponsesStreamDecoder)
