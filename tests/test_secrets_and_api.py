"""The public namespace, and keys that never leak into reprs, errors or logs."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

import callm
from callm.testing import FakeOpenAIServer, Fault, Reply
from helpers import FAKE_KEY, fake_provider

PUBLIC = {
    "APIConnectionError",
    "APIError",
    "APIResponseError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncConversation",
    "AsyncRunStream",
    "AsyncStream",
    "AuthenticationError",
    "BadRequestError",
    "Budget",
    "BudgetExceededError",
    "CallInfo",
    "CallParams",
    "CallmError",
    "Client",
    "ConfigurationError",
    "ConflictError",
    "ContextWindowExceededError",
    "Conversation",
    "Document",
    "FinishEvent",
    "Group",
    "Image",
    "InternalServerError",
    "InvalidRequestError",
    "MaxStepsExceededError",
    "Message",
    "ModelInfo",
    "NotFoundError",
    "OverloadedError",
    "Part",
    "PartialOutput",
    "PermissionDeniedError",
    "ProviderSpec",
    "Quirks",
    "RateLimit",
    "RateLimitError",
    "RawPart",
    "Reasoning",
    "ReasoningDelta",
    "Refusal",
    "RefusalDelta",
    "Request",
    "RequestVetoed",
    "Response",
    "ResponseCache",
    "RunStream",
    "Stream",
    "StreamEvent",
    "StreamInterruptedError",
    "StructuredOutputError",
    "Text",
    "TextDelta",
    "Timeout",
    "TokenCount",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallEvent",
    "ToolResult",
    "ToolResultEvent",
    "Usage",
    "UsageEvent",
    "__version__",
    "complete",
    "count_tokens",
    "embed",
    "EmbedParams",
    "Embeddings",
    "stream",
    "tool",
}


def test_all_is_exactly_the_public_api() -> None:
    assert set(callm.__all__) == PUBLIC
    public_attrs = {n for n in vars(callm) if not n.startswith("_")} - {
        "annotations",
        "Any",
        "Unpack",
    }
    assert public_attrs - PUBLIC <= {"MessagesInput"} | {
        m for m in public_attrs if isinstance(getattr(callm, m), type(callm))
    }


def test_error_tree() -> None:
    assert issubclass(callm.ContextWindowExceededError, callm.BadRequestError)
    assert issubclass(callm.StreamInterruptedError, callm.APIConnectionError)
    assert issubclass(callm.APITimeoutError, callm.APIConnectionError)
    assert issubclass(callm.OverloadedError, callm.InternalServerError)
    for name in ("APIError", "ConfigurationError", "InvalidRequestError"):
        assert issubclass(getattr(callm, name), callm.CallmError)


def test_import_is_lazy() -> None:
    code = (
        "import sys, callm; heavy = [m for m in ('urllib3', 'aiohttp', 'httpx2', 'asyncio', "
        "'click', 'dotenv', 'ssl', 'sqlite3', 'pydantic', 'pydantic_core', 'docstring_parser', "
        "'tiktoken', 'jsonschema', 'genai_prices', 'granian', 'uvloop', 'prometheus_client', "
        "'callm.server') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_key_never_leaks(fake_openai: FakeOpenAIServer, caplog: pytest.LogCaptureFixture) -> None:
    fake_openai.queue(Fault.unauthorized(), Fault.rate_limit(), Reply("ok"))
    client = callm.Client(providers=fake_provider(fake_openai.base_url), max_retries=0)
    seen: list[str] = [repr(client), repr(client.settings.spec("fake"))]
    with caplog.at_level(logging.DEBUG, logger="callm"):
        for _ in range(2):
            with pytest.raises(callm.APIError) as info:
                client.complete("fake/m", "hi")
            seen += [str(info.value), repr(info.value), repr(info.value.body)]
        response = client.complete("fake/m", "hi")
        request = client.http_request("fake/m", "hi")
    seen += [repr(response), repr(request), caplog.text, repr(client.settings.endpoint("fake"))]
    assert caplog.records, "the calls should have been logged"
    for text in seen:
        assert FAKE_KEY not in text


def test_missing_key_error_does_not_echo_other_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", FAKE_KEY)
    with pytest.raises(callm.ConfigurationError) as info:
        callm.Client().complete("openai/m", "hi")
    assert FAKE_KEY not in str(info.value)


def test_inline_images_are_not_dumped_in_reprs() -> None:
    image = callm.Image.from_bytes(b"\x89PNG" + b"\0" * 5000)
    assert image.url.startswith("data:image/png;base64,")
    assert len(repr(image)) < 120


def test_usage_adds() -> None:
    total = callm.Usage(10, 5, 2, 1, 3) + callm.Usage(1, 1, 0, 0, 0)
    assert total == callm.Usage(11, 6, 2, 1, 3)
    assert total.total_tokens == 17


def test_invalid_content_is_refused_not_dropped(fake_openai: FakeOpenAIServer) -> None:
    client = callm.Client(providers=fake_provider(fake_openai.base_url))
    bad = callm.Message("system", (callm.Image("https://example.invalid/x.png"),))
    with pytest.raises(callm.InvalidRequestError, match="cannot carry an image"):
        client.complete("fake/m", [bad])
    with pytest.raises(callm.InvalidRequestError, match="role"):
        client.complete("fake/m", [{"role": "wizard", "content": "hi"}])
    assert fake_openai.requests == []
