"""Vertex AI through callm's public API: Gemini and Claude at Vertex's paths, OAuth 2.0 tokens.

The service account's RSA key is made in the test; its key file's ``token_uri`` is the fake's
token endpoint, which verifies the JWT google-auth signs with it and issues access tokens
that the fake's Vertex routes then require.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

import callm
import drive
from callm.testing import FakeOpenAIServer, Fault
from helpers import service_account_file, vertex_env

GEMINI = "vertex/gemini-2.5-flash"
CLAUDE = "vertex/claude-sonnet-4-5@20250929"
PREFIX = "/v1/projects/callm-test-project/locations/us-east5/publishers"
RECORDED = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "recorded" / "google"
pytestmark = pytest.mark.parametrize("mode", drive.MODES)


@pytest.fixture
def server(
    fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> FakeOpenAIServer:
    for name, value in vertex_env(fake_openai, tmp_path).items():
        monkeypatch.setenv(name, value)
    return fake_openai


async def calls(mode: str, *requests: tuple[str, bool, Any]) -> list[callm.Response]:
    """Several calls through one client: (model, streamed, messages) each."""
    out: list[callm.Response] = []
    if mode == "sync":
        with callm.Client(max_retries=0) as client:
            for model, streamed, messages in requests:
                if not streamed:
                    out.append(client.complete(model, messages))
                    continue
                with client.stream(model, messages) as s:
                    list(s)
                out.append(s.response)
        return out
    async with callm.AsyncClient(max_retries=0) as ac:
        for model, streamed, messages in requests:
            if not streamed:
                out.append(await ac.complete(model, messages))
                continue
            s2 = await ac.stream(model, messages)
            async with s2:
                out.append(await s2.get_response())
    return out


def bearer_of(server: FakeOpenAIServer, index: int = -1) -> str:
    return server.requests[index].headers["authorization"].removeprefix("Bearer ")


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
async def test_gemini_at_vertex_paths_with_an_access_token(
    server: FakeOpenAIServer, mode: str, streamed: bool
) -> None:
    (r,) = await calls(mode, (GEMINI, streamed, "Hello there"))
    assert r.text.startswith('[offline] You said: "Hello there"')
    assert (r.provider, r.finish_reason) == ("vertex", "stop")
    record = server.requests[-1]
    method = "streamGenerateContent" if streamed else "generateContent"
    assert record.path == f"{PREFIX}/google/models/gemini-2.5-flash:{method}"
    assert bearer_of(server).startswith("ya29.fake-")
    assert "x-goog-api-key" not in record.headers
    assert r.cost is not None


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
async def test_claude_at_vertex_raw_predict_paths(
    server: FakeOpenAIServer, mode: str, streamed: bool
) -> None:
    (r,) = await calls(
        mode, (CLAUDE, streamed, [callm.Message.system("Be brief."), callm.Message.user("Hi")])
    )
    assert r.text.startswith('[offline] You said: "Hi"')
    record = server.requests[-1]
    method = "streamRawPredict" if streamed else "rawPredict"
    assert record.path == f"{PREFIX}/anthropic/models/claude-sonnet-4-5@20250929:{method}"
    body = record.json
    assert body["anthropic_version"] == "vertex-2023-10-16"
    assert "model" not in body and body["system"] == [{"type": "text", "text": "Be brief."}]
    assert "anthropic-version" not in record.headers and "x-api-key" not in record.headers
    assert r.cost is not None


async def test_one_token_serves_gemini_and_claude_until_it_nears_expiry(
    server: FakeOpenAIServer, mode: str
) -> None:
    await calls(mode, (GEMINI, False, "a"), (CLAUDE, True, "b"), (GEMINI, True, "c"))
    assert server.google_tokens() == 1
    assert len({bearer_of(server, i) for i in (1, 2, 3)}) == 1


async def test_a_token_close_to_expiry_is_refreshed_before_it_is_used(
    server: FakeOpenAIServer, mode: str
) -> None:
    # google-auth refreshes 3 min 45 s before expiry: a 60-second token is always due.
    server.google_tokens(lifetime=60)
    await calls(mode, (GEMINI, False, "a"), (CLAUDE, False, "b"))
    assert server.google_tokens() == 2
    assert bearer_of(server, 1) != bearer_of(server, 3)  # token, call, token, call


async def test_a_revoked_token_is_an_authentication_error_saying_what_to_do(
    server: FakeOpenAIServer, mode: str
) -> None:
    def revoke(info: Any) -> None:  # a before_request hook: between the client's two calls
        if info.request.messages[-1].text == "b":
            server.google_tokens(revoke=True)

    client_args: dict[str, Any] = {"max_retries": 0, "before_request": [revoke]}
    with pytest.raises(callm.AuthenticationError) as caught:
        if mode == "sync":
            with callm.Client(**client_args) as client:
                client.complete(GEMINI, "a")
                client.complete(CLAUDE, "b")
        else:
            async with callm.AsyncClient(**client_args) as ac:
                await ac.complete(GEMINI, "a")
                await ac.complete(CLAUDE, "b")
    assert server.google_tokens() == 1  # the token was still valid as far as callm knew
    message = str(caught.value)
    assert "gcloud auth application-default login" in message
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message
    assert bearer_of(server) not in message + repr(caught.value)


async def test_a_key_the_token_endpoint_refuses_is_an_authentication_error(
    server: FakeOpenAIServer, mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = service_account_file(server, tmp_path / "other", private_key_id="revoked-key")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(other))
    with pytest.raises(callm.AuthenticationError, match="Invalid JWT Signature"):
        await calls(mode, (GEMINI, False, "a"))


async def test_application_default_credentials_from_gcloud(
    server: FakeOpenAIServer, mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gcloud = tmp_path / "gcloud"
    key = service_account_file(server, gcloud)
    key.rename(gcloud / "application_default_credentials.json")
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(gcloud))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "adc-project")
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "global")
    (r,) = await calls(mode, (GEMINI, True, "Hello there"))
    assert r.text.startswith("[offline]")
    path = server.requests[-1].path
    assert path.startswith("/v1/projects/adc-project/locations/global/publishers/google/")


async def test_missing_credentials_or_project_say_how_to_set_them(
    server: FakeOpenAIServer, mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "absent.json"))
    with pytest.raises(callm.ConfigurationError, match="gcloud auth application-default login"):
        await calls(mode, (GEMINI, False, "a"))
    bare = service_account_file(server, tmp_path / "bare", project_id=None)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(bare))
    with pytest.raises(callm.ConfigurationError, match="GOOGLE_CLOUD_PROJECT"):
        await calls(mode, (CLAUDE, False, "a"))


async def test_errors_at_vertex_are_typed_as_google_and_anthropic_say(
    server: FakeOpenAIServer, mode: str
) -> None:
    server.queue(Fault.rate_limit(), Fault.overloaded())
    with pytest.raises(callm.RateLimitError):
        await calls(mode, (GEMINI, False, "a"))
    with pytest.raises(callm.OverloadedError):
        await calls(mode, (CLAUDE, True, "a"))


async def test_tokens_are_counted_at_vertex(server: FakeOpenAIServer, mode: str) -> None:
    if mode == "sync":
        with callm.Client() as client:
            counts = [client.count_tokens(m, "one two three") for m in (GEMINI, CLAUDE)]
    else:
        async with callm.AsyncClient() as ac:
            counts = [await ac.count_tokens(m, "one two three") for m in (GEMINI, CLAUDE)]
    assert [c.tokens for c in counts] == [3, 3]
    assert server.requests[-1].path == f"{PREFIX}/anthropic/models/count-tokens:rawPredict"
    assert server.requests[-1].json["model"] == "claude-sonnet-4-5@20250929"


async def test_the_token_is_never_logged(
    server: FakeOpenAIServer, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.queue(Fault.server_error())
    with pytest.raises(callm.InternalServerError) as caught:
        await calls(mode, (GEMINI, False, "a"))
    token = bearer_of(server)
    with callm.Client() as client:
        shown = repr(client.http_request(GEMINI, "hi")) + repr(client)
    assert token not in caplog.text + str(caught.value) + shown


@pytest.mark.parametrize(
    "name",
    ["test_google_model_vertex_provider", "test_google_vertex_logprobs_without_top_logprobs"],
)
async def test_recorded_vertex_traffic(
    server: FakeOpenAIServer, mode: str, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """A request callm builds goes to the URL the recording went to; its reply decodes."""
    yaml = pytest.importorskip("yaml")
    path = RECORDED / f"{name}.yaml"
    if not path.exists():
        pytest.skip("../shared/fixtures is absent (a user's checkout)")
    (interaction,) = yaml.safe_load(path.read_text())["interactions"]
    recorded = interaction["request"]
    monkeypatch.setenv("VERTEX_BASE_URL", "https://aiplatform.googleapis.com/v1beta1")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "pydantic-ai")
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "global")
    model = recorded["uri"].rsplit("/", 1)[1].split(":")[0]
    body = recorded["parsed_body"]
    messages: list[Any] = [{"role": "user", "content": body["contents"][0]["parts"][0]["text"]}]
    system = body.get("systemInstruction")
    if system:
        messages.insert(0, {"role": "system", "content": system["parts"][0]["text"]})
    with callm.Client() as client:
        request = client.http_request(f"vertex/{model}", messages)
    assert request.url == recorded["uri"]
    assert json.loads(request.body or b"{}")["contents"] == body["contents"]
    from callm._core.http import HttpResponse
    from callm.protocols.gemini import decode

    reply = json.dumps(interaction["response"]["parsed_body"]).encode()
    endpoint = client.settings.endpoint("vertex", model)
    response = decode(endpoint, HttpResponse(200, {}, reply))
    candidate = interaction["response"]["parsed_body"]["candidates"][0]
    assert response.text == candidate["content"]["parts"][0]["text"]
    assert response.finish_reason == "stop"


async def test_the_models_vertex_lists_are_model_gardens_google_models(
    server: FakeOpenAIServer, mode: str
) -> None:
    if mode == "sync":
        with callm.Client() as client:
            models = client.models("vertex")
    else:
        async with callm.AsyncClient() as ac:
            models = await ac.models("vertex")
    assert {"gemini-2.5-flash", "gemini-2.5-pro"} <= {m.id for m in models}
    assert {(m.provider, m.owned_by) for m in models} == {("vertex", "google")}
    record = server.requests[-1]
    assert record.path == "/v1beta1/publishers/google/models"  # no project: Model Garden
    assert bearer_of(server).startswith("ya29.fake-")
