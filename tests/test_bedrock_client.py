"""Amazon Bedrock through callm's public API, against the fake over real HTTP.

Requests are signed with AWS Signature V4 (the fake recomputes every signature made with
the key pair it was given) or carry a Bedrock API key; replies come back as Converse JSON
or as AWS's binary event stream. botocore, AWS's own SDK, is a client of the same fake.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import callm
import drive
from callm.testing import FakeOpenAIServer, Fault, Reply
from helpers import AWS_KEY_ID, point_builtins

MODEL = "bedrock/anthropic.claude-3-5-haiku-20241022-v1:0"
WEATHER = callm.Tool(
    "get_weather",
    "Current weather of a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
pytestmark = pytest.mark.parametrize("mode", drive.MODES)


@pytest.fixture
def server(fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAIServer:
    return point_builtins(fake_openai, monkeypatch, "bedrock-test")


async def call(mode: str, streamed: bool, *args: Any, **params: Any) -> callm.Response:
    client_args = {"max_retries": params.pop("max_retries", 0)}
    if mode == "sync":
        with callm.Client(**client_args) as client:
            if not streamed:
                return client.complete(*args, **params)
            with client.stream(*args, **params) as s:
                list(s)
                return s.response
    async with callm.AsyncClient(**client_args) as ac:
        if not streamed:
            return await ac.complete(*args, **params)
        s2 = await ac.stream(*args, **params)
        async with s2:
            return await s2.get_response()


def sent(server: FakeOpenAIServer) -> dict[str, Any]:
    body = server.requests[-1].json
    assert isinstance(body, dict)
    return body


# --- the request ------------------------------------------------------------------------


async def test_a_converse_request_carries_what_was_asked(
    server: FakeOpenAIServer, mode: str
) -> None:
    png = callm.Image.from_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    pdf = callm.Document.from_bytes(b"%PDF-1.4 fake", title="Q3 report.pdf")
    messages = [
        callm.Message.system("Be brief."),
        callm.Message.user("Read these", png, pdf),
    ]
    r = await call(
        mode, False, MODEL, messages, max_tokens=40, temperature=0.3, top_p=0.9, top_k=5,
        stop=["END"], tools=[WEATHER], tool_choice="get_weather",
    )  # fmt: skip
    assert r.finish_reason == "tool_calls"
    record = server.requests[-1]
    assert record.path == "/model/anthropic.claude-3-5-haiku-20241022-v1:0/converse"
    body = sent(server)
    assert body["system"] == [{"text": "Be brief."}]
    assert body["inferenceConfig"] == {
        "maxTokens": 40,
        "temperature": 0.3,
        "topP": 0.9,
        "stopSequences": ["END"],
    }
    assert body["additionalModelRequestFields"] == {"top_k": 5}
    content = body["messages"][0]["content"]
    assert content[1] == {"image": {"format": "png", "source": {"bytes": png.url.split(",")[1]}}}
    assert content[2]["document"]["format"] == "pdf"
    assert content[2]["document"]["name"] == "Q3 report pdf"  # Bedrock allows no "."
    spec = body["toolConfig"]["tools"][0]["toolSpec"]
    assert spec["inputSchema"] == {"json": dict(WEATHER.parameters)}
    assert body["toolConfig"]["toolChoice"] == {"tool": {"name": "get_weather"}}
    assert "model" not in body


async def test_structured_output_sends_the_schema_as_a_json_string(
    server: FakeOpenAIServer, mode: str
) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    fmt = {"type": "json_schema", "name": "person", "schema": schema}
    r = await call(mode, True, MODEL, "Describe a person", response_format=fmt)
    assert isinstance(json.loads(r.text)["name"], str)
    text_format = sent(server)["outputConfig"]["textFormat"]
    assert text_format["type"] == "json_schema"
    definition = text_format["structure"]["jsonSchema"]
    assert (definition["name"], json.loads(definition["schema"])) == ("person", schema)


async def test_tool_results_and_turns_of_one_role_are_merged(
    server: FakeOpenAIServer, mode: str
) -> None:
    messages: list[callm.Message] = [callm.Message.user("Use get_weather for Oslo")]
    first = await call(mode, True, MODEL, messages, tools=[WEATHER])
    (tool_call,) = first.tool_calls
    messages += [
        first.to_message(),
        callm.Message.tool(tool_call.id, "-3C", is_error=False),
        callm.Message.user("and tomorrow?"),
    ]
    await call(mode, False, MODEL, messages, tools=[WEATHER])
    turns = sent(server)["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    result = turns[2]["content"][0]["toolResult"]
    assert result == {"toolUseId": tool_call.id, "content": [{"text": "-3C"}]}
    assert turns[2]["content"][1] == {"text": "and tomorrow?"}


async def test_cache_points_mark_the_system_prompt_and_the_history(
    server: FakeOpenAIServer, mode: str
) -> None:
    history = [
        callm.Message.system("Long instructions."),
        callm.Message.user("first"),
        callm.Message.assistant("answer"),
        callm.Message.user("second"),
    ]
    await call(mode, False, MODEL, history, cache=True)
    body = sent(server)
    point = {"cachePoint": {"type": "default"}}
    assert body["system"][-1] == point
    assert body["messages"][1]["content"][-1] == point
    assert point not in body["messages"][2]["content"]


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"seed": 1}, "no seed"),
        ({"response_format": {"type": "json_object"}}, "no JSON mode without a schema"),
        ({"tools": [WEATHER], "tool_choice": "none"}, "no tool_choice 'none'"),
    ],
)
async def test_what_converse_cannot_express_is_refused_before_sending(
    server: FakeOpenAIServer, mode: str, params: dict[str, Any], match: str
) -> None:
    with pytest.raises(callm.InvalidRequestError, match=match):
        await call(mode, False, MODEL, "hi", **params)
    assert server.requests == []


async def test_an_image_by_web_url_is_refused(server: FakeOpenAIServer, mode: str) -> None:
    image = callm.Image.from_url("https://example.com/cat.png")
    with pytest.raises(callm.InvalidRequestError, match="S3"):
        await call(mode, False, MODEL, [callm.Message.user("what?", image)])


# --- credentials ------------------------------------------------------------------------


async def test_a_profile_of_the_credentials_file_signs_with_its_session_token(
    server: FakeOpenAIServer, mode: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = "profile-secret/" + "q" * 20
    server.accept_aws_key("AKIDPROFILE", secret)
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(
        "[default]\naws_access_key_id = AKIDWRONG\naws_secret_access_key = nope\n\n"
        f"[work]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = {secret}\n"
        "aws_session_token = session-token-value\n"
    )
    (tmp_path / "aws-config").write_text("[profile work]\nregion = eu-central-1\n")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_PROFILE", "work")
    r = await call(mode, False, MODEL, "Hello there")
    assert r.text.startswith("[offline]")
    headers = server.requests[-1].headers
    assert headers["x-amz-security-token"] == "session-token-value"
    assert "/eu-central-1/bedrock/aws4_request" in headers["authorization"]
    server.queue(Fault.status(400, f"bad request echoing {secret}"))  # a server that echoes
    with pytest.raises(callm.BadRequestError) as caught:
        await call(mode, False, MODEL, "again")
    assert secret not in str(caught.value) + repr(caught.value.body)


async def test_a_wrong_secret_is_an_authentication_error_saying_what_to_do(
    server: FakeOpenAIServer, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(callm.AuthenticationError) as caught:
        await call(mode, False, MODEL, "hi")
    message = str(caught.value)
    assert "signature we calculated does not match" in message
    assert "AWS_PROFILE" in message and "AWS_BEARER_TOKEN_BEDROCK" in message
    assert caught.value.status_code == 403
    assert "not-the-secret" not in message + repr(caught.value)


async def test_an_unknown_access_key_is_an_authentication_error(
    server: FakeOpenAIServer, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDUNKNOWN")
    with pytest.raises(callm.AuthenticationError, match="security token included"):
        await call(mode, True, MODEL, "hi")


async def test_expired_credentials_say_so_and_what_to_do(
    server: FakeOpenAIServer, mode: str
) -> None:
    expired = "The security token included in the request is expired"
    server.queue(Fault.status(403, expired, type="ExpiredTokenException"))
    with pytest.raises(callm.AuthenticationError) as caught:
        await call(mode, False, MODEL, "hi")
    assert caught.value.code == "ExpiredTokenException"
    assert "have expired" in str(caught.value) and "aws sso login" in str(caught.value)


async def test_a_bedrock_api_key_goes_as_a_bearer_token(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "ABSK" + "k" * 40
    with FakeOpenAIServer(api_key=key) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.bedrock_base_url)
        monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", key)
        r = await call(mode, True, MODEL, "Hello there")
        assert r.text.startswith("[offline]")
        assert server.requests[-1].headers["authorization"] == f"Bearer {key}"
        monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "ABSK-wrong")
        with pytest.raises(callm.AuthenticationError, match="API Key is valid"):
            await call(mode, False, MODEL, "hi")


async def test_no_region_and_no_credentials_say_how_to_set_them(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    with pytest.raises(callm.ConfigurationError, match="set AWS_REGION"):
        await call(mode, False, MODEL, "hi")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    with pytest.raises(callm.ConfigurationError, match="AWS_ACCESS_KEY_ID and AWS_SECRET"):
        await call(mode, False, MODEL, "hi")


async def test_botocore_brings_credential_process_profiles(
    server: FakeOpenAIServer, mode: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = "process-secret/" + "p" * 20
    server.accept_aws_key("AKIDPROCESS", secret)
    script = tmp_path / "creds.py"
    output = {"Version": 1, "AccessKeyId": "AKIDPROCESS", "SecretAccessKey": secret}
    script.write_text(f"import json\nprint(json.dumps({output!r}))\n")
    (tmp_path / "aws-config").write_text(
        f"[profile tool]\ncredential_process = {sys.executable} {script}\nregion = us-west-2\n"
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_PROFILE", "tool")
    r = await call(mode, True, MODEL, "Hello there")
    assert r.text.startswith("[offline]")
    assert "Credential=AKIDPROCESS/" in server.requests[-1].headers["authorization"]


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error", "code"),
    [
        (Fault.rate_limit(), callm.RateLimitError, "ThrottlingException"),
        (Fault.overloaded(), callm.OverloadedError, "ServiceUnavailableException"),
        (Fault.status(403, "not authorized to perform bedrock:InvokeModel"),
         callm.PermissionDeniedError, "AccessDeniedException"),
        (Fault.status(404, "The provided model identifier is invalid."),
         callm.NotFoundError, "ResourceNotFoundException"),
        (Fault.status(400, "Input is too long for requested model."),
         callm.ContextWindowExceededError, "ValidationException"),
    ],
)  # fmt: skip
async def test_errors_are_typed_by_their_aws_exception(
    server: FakeOpenAIServer, mode: str, fault: Fault, error: type[Exception], code: str
) -> None:
    server.queue(fault)
    with pytest.raises(error) as caught:
        await call(mode, False, MODEL, "hi")
    assert isinstance(caught.value, callm.APIError)
    assert caught.value.code == code
    assert caught.value.request_id  # x-amzn-RequestId


async def test_throttling_is_retried(server: FakeOpenAIServer, mode: str) -> None:
    server.queue(Fault.rate_limit(retry_after=0))
    r = await call(mode, True, MODEL, "Hello there", max_retries=1)
    assert r.text.startswith("[offline]")
    assert len(server.requests) == 2


async def test_an_exception_inside_the_stream_keeps_what_arrived(
    server: FakeOpenAIServer, mode: str
) -> None:
    server.queue(Fault.stream_error(3, "Too many tokens, slow down", status=429))
    with pytest.raises(callm.RateLimitError) as caught:
        await call(mode, True, MODEL, "one two three four five")
    assert caught.value.status_code is None
    assert caught.value.partial is not None and caught.value.partial.text
    assert "slow down" in str(caught.value)


async def test_a_stream_cut_off_is_interrupted(server: FakeOpenAIServer, mode: str) -> None:
    server.queue(Fault.drop_mid_stream(4))
    with pytest.raises(callm.StreamInterruptedError) as caught:
        await call(mode, True, MODEL, "one two three four five six")
    assert caught.value.partial is not None and caught.value.partial.text


async def test_a_frame_that_is_not_json_is_unreadable(server: FakeOpenAIServer, mode: str) -> None:
    server.queue(Fault.malformed_json(2))
    with pytest.raises(callm.APIResponseError, match="not JSON"):
        await call(mode, True, MODEL, "one two three")


# --- the rest of the API ----------------------------------------------------------------


async def test_usage_stop_reason_cost_and_model(server: FakeOpenAIServer, mode: str) -> None:
    usage = {"inputTokens": 7, "outputTokens": 2, "totalTokens": 19, "cacheReadInputTokens": 10}
    server.queue(Reply("Hi there", usage=usage))
    r = await call(mode, True, MODEL, "hello")
    assert (r.usage.input_tokens, r.usage.cached_input_tokens, r.usage.output_tokens) == (17, 10, 2)
    assert r.finish_reason == "stop" and r.native_finish_reason == "end_turn"
    assert r.model == "anthropic.claude-3-5-haiku-20241022-v1:0"
    assert r.cost is not None and r.cost > 0
    assert r.request_id


async def test_tokens_are_counted_and_models_listed(server: FakeOpenAIServer, mode: str) -> None:
    if mode == "sync":
        with callm.Client() as client:
            count = client.count_tokens(MODEL, "one two three")
            models = client.models("bedrock")
    else:
        async with callm.AsyncClient() as ac:
            count = await ac.count_tokens(MODEL, "one two three")
            models = await ac.models("bedrock")
    assert count.tokens == 3 and count.exact
    assert "amazon.nova-lite-v1:0" in [m.id for m in models]
    assert server.requests[-1].path == "/foundation-models"


def test_curl_shows_no_secret(server: FakeOpenAIServer, mode: str) -> None:
    from callm.cli import cli

    result = CliRunner().invoke(cli, ["--curl", "-m", MODEL, "hi"])
    assert result.exit_code == 0, result.output
    assert "/model/anthropic.claude-3-5-haiku-20241022-v1:0/converse" in result.stdout
    assert "aws-secret/" not in result.stdout
    assert "authorization: ***" in result.stdout


def test_botocore_is_a_client_of_the_fake(server: FakeOpenAIServer, mode: str) -> None:
    from botocore.session import Session

    client = Session().create_client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=server.bedrock_base_url,
        aws_access_key_id=AWS_KEY_ID,
        aws_secret_access_key="aws-secret/bedrock-test",
    )
    model = "anthropic.claude-3-5-haiku-20241022-v1:0"
    user = [{"role": "user", "content": [{"text": "Use get_weather for Paris"}]}]
    schema = {"json": dict(WEATHER.parameters)}
    tools = {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": schema}}]}
    if mode == "sync":
        whole = client.converse(modelId=model, messages=user, toolConfig=tools)
        assert whole["stopReason"] == "tool_use"
        return
    stream = client.converse_stream(modelId=model, messages=user, toolConfig=tools)["stream"]
    events = list(stream)
    assert [next(iter(e)) for e in events][-2:] == ["messageStop", "metadata"]
    deltas = [e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events[2:-3]]
    assert json.loads("".join(deltas)) == {"city": "Paris"}
