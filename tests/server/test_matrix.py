"""Every ingress by every upstream protocol, whole and streamed, with the official SDKs as
callers: text, reasoning, tool-call arguments, finish reasons, usage and errors survive the
translation (``sdk_drivers.py`` reads each SDK's view into one shape)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gateway_process import GatewayProcess
from sdk_drivers import DRIVERS, SDK_ERRORS, failure

from callm.testing import FakeOpenAIServer, FakeToolCall, Fault, Reply

INGRESSES = list(DRIVERS)
UPSTREAMS = [
    "openai/gpt-4o-mini",
    "openai-responses/gpt-5-mini",
    "anthropic/claude-sonnet-4-5",
    "gemini/gemini-2.5-flash",
]
MODES = ["whole", "stream"]


@pytest.fixture(scope="module")
def gateway(
    upstream: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """A gateway that does not retry: each fault reaches the caller at once (the retries
    themselves are the library's, tested with it)."""
    home = tmp_path_factory.mktemp("matrix-home")
    config = "[gateway]\nmax_retries = 0\naccess_log = false\n"
    with GatewayProcess(upstream, home, config=config) as process:
        yield process


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("model", UPSTREAMS)
@pytest.mark.parametrize("ingress", INGRESSES)
def test_text_reasoning_and_usage_survive(
    gateway: GatewayProcess, upstream: FakeOpenAIServer, ingress: str, model: str, mode: str
) -> None:
    upstream.queue(Reply("It is sunny in Paris.", reasoning="Recall the forecast."))
    seen = DRIVERS[ingress](gateway.url, gateway.new_key(), model, mode == "stream", False)
    assert seen.text == "It is sunny in Paris."
    assert seen.reasoning == "Recall the forecast."
    assert seen.finish == "stop"
    assert seen.input_tokens > 0
    assert seen.output_tokens > 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("model", UPSTREAMS)
@pytest.mark.parametrize("ingress", INGRESSES)
def test_tool_call_arguments_survive(
    gateway: GatewayProcess, upstream: FakeOpenAIServer, ingress: str, model: str, mode: str
) -> None:
    arguments = {"city": "Paris", "days": 2}
    upstream.queue(
        Reply(
            tool_calls=[
                FakeToolCall("get_weather", arguments),
                FakeToolCall("get_weather", {"city": "Nice"}),
            ]
        )
    )
    seen = DRIVERS[ingress](gateway.url, gateway.new_key(), model, mode == "stream", True)
    assert seen.calls == [("get_weather", arguments), ("get_weather", {"city": "Nice"})]
    assert seen.finish == "tool_calls"
    assert seen.output_tokens > 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("model", UPSTREAMS)
@pytest.mark.parametrize("ingress", INGRESSES)
def test_a_reply_cut_at_the_token_cap_says_so(
    gateway: GatewayProcess, upstream: FakeOpenAIServer, ingress: str, model: str, mode: str
) -> None:
    upstream.queue(Reply("It is sunny and", finish_reason="length"))
    seen = DRIVERS[ingress](gateway.url, gateway.new_key(), model, mode == "stream", False)
    assert seen.text == "It is sunny and"
    assert seen.finish == "length"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("model", UPSTREAMS)
@pytest.mark.parametrize("ingress", INGRESSES)
def test_upstream_errors_reach_each_sdk_as_its_own(
    gateway: GatewayProcess, upstream: FakeOpenAIServer, ingress: str, model: str, mode: str
) -> None:
    driver = DRIVERS[ingress]
    upstream.queue(Fault.rate_limit(retry_after=3))
    with pytest.raises(SDK_ERRORS) as limited:
        driver(gateway.url, gateway.new_key(), model, mode == "stream", False)
    status, retry_after, _ = failure(limited.value)
    assert (status, retry_after) == (429, "3")
    upstream.queue(Fault.status(400, "The prompt is not allowed here."))
    with pytest.raises(SDK_ERRORS) as refused:
        driver(gateway.url, gateway.new_key(), model, mode == "stream", False)
    status, _, message = failure(refused.value)
    assert status == 400
    assert "The prompt is not allowed here." in message
    upstream.queue(Fault.server_error())
    with pytest.raises(SDK_ERRORS) as broken:
        driver(gateway.url, gateway.new_key(), model, mode == "stream", False)
    assert failure(broken.value)[0] >= 500
