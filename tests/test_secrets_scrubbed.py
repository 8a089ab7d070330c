"""No key in any message or record: keys callm knows are scrubbed by value, wherever they
come back (an echoing error body, a reply, a pasted prompt), and secrets in base URLs are
hidden everywhere and sent the way they are meant to be.

Keys here have shapes no pattern knows (Azure's 32 hex digits, Mistral's 32 alphanumerics,
Together's 64 hex digits), so only their values can give them away.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import string
from pathlib import Path

import pytest

import callm
import drive
from hostile import HostileServer, Received, Send, chat_json, chunk, head, sse

STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])


def hex_key(n: int = 32) -> str:
    return "".join(secrets.choice("0123456789abcdef") for _ in range(n))


def alnum_key(n: int = 32) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))


def sent_key(request: Received) -> str:
    """The key the client sent, whichever header carries it."""
    for name in ("api-key", "x-api-key", "x-goog-api-key"):
        if name in request.headers:
            return request.headers[name]
    return request.headers.get("authorization", "").removeprefix("Bearer ")


def echo_key_in_error(request: Received, send: Send) -> None:
    """A 401 whose message quotes the key it was sent, in full, as some servers do."""
    key = sent_key(request)
    body = json.dumps(
        {"error": {"message": f"Incorrect API key provided: {key}.", "param": key}}
    ).encode()
    send(head(401, [("content-type", "application/json")], length=len(body)) + body)


def echo_key_in_reply(request: Received, send: Send) -> None:
    """A 200 whose reply text holds the key the client sent, streamed when asked to be."""
    text = f"your key is {sent_key(request)} and your words were noted"
    if request.json.get("stream"):
        body = sse(chunk({"role": "assistant", "content": text}), chunk({}, "stop"))
        send(head(200, [("content-type", "text/event-stream")]) + body)
        return
    body = chat_json(text)
    send(head(200, [("content-type", "application/json")], length=len(body)) + body)


def stored_bytes(home: Path) -> bytes:
    """Every byte callm keeps in CALLM_HOME's database files."""
    return b"".join(p.read_bytes() for p in sorted(home.glob("callm.db*")))


PROVIDERS = {
    # name: (protocol entry, key) — each key sent in its provider's own header
    "azure-like": ({"auth": "api-key"}, hex_key(32)),
    "mistral-like": ({}, alnum_key(32)),
    "together-like": ({}, hex_key(64)),
}


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("mode", drive.MODES)
async def test_an_error_echoing_the_key_never_shows_it(
    mode: str, provider: str, isolated_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    entry, key = PROVIDERS[provider]
    with HostileServer(echo_key_in_error) as server, caplog.at_level(logging.DEBUG, "callm"):
        providers = {provider: {"base_url": server.base_url, "api_key": key, **entry}}
        client_kw = {"providers": providers, "max_retries": 0}
        with pytest.raises(callm.AuthenticationError) as info:
            if mode == "sync":
                with callm.Client(**client_kw) as client:
                    client.complete(f"{provider}/m", "hi")
            else:
                async with callm.AsyncClient(**client_kw) as aclient:
                    await aclient.complete(f"{provider}/m", "hi")
    assert sent_key(server.received[0]) == key  # the server did get it, and echoed it
    error = info.value
    shown = [str(error), repr(error), error.message, json.dumps(error.body), caplog.text]
    assert all(key not in text for text in shown)
    assert "Incorrect API key provided: ***" in str(error)
    assert key.encode() not in stored_bytes(isolated_env)


@STREAMED
def test_a_reply_or_prompt_holding_a_known_key_is_stored_without_it(
    streamed: bool, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, other = alnum_key(32), hex_key(32)
    monkeypatch.setenv("MISTRAL_API_KEY", key)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", other)  # known to callm, not used here
    with HostileServer(echo_key_in_reply) as server:
        monkeypatch.setenv("MISTRAL_BASE_URL", server.base_url)
        with callm.Client() as client:
            conv = client.conversation("mistral/m")
            prompt = f"remember {key} and {other} for me"
            if streamed:
                with conv.stream(prompt) as s:
                    reply = s.response
            else:
                reply = conv.send(prompt)
    assert key in reply.text  # what the provider said reaches the caller untouched
    stored = stored_bytes(isolated_env)
    assert key.encode() not in stored and other.encode() not in stored
    assert b"remember *** and *** for me" in stored


def test_extra_headers_are_stored_redacted(isolated_env: Path) -> None:
    token = alnum_key(40)
    with HostileServer(echo_key_in_reply) as server:
        providers = {"gw": {"base_url": server.base_url, "api_key": "sk-" + alnum_key(40)}}
        with callm.Client(providers=providers) as client:
            client.complete(
                "gw/m", "hi", extra_headers={"x-gateway-token": token, "x-trace": "visible"}
            )
    assert server.received[0].headers["x-gateway-token"] == token
    stored = stored_bytes(isolated_env)
    assert token.encode() not in stored
    assert b"visible" in stored


def test_secrets_in_a_base_url_are_sent_and_hidden(
    isolated_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    password, token = alnum_key(20), alnum_key(24)

    def busy(request: Received, send: Send) -> None:
        body = b'{"error": {"message": "busy"}}'
        send(head(503, [("retry-after-ms", "1")], length=len(body)) + body)

    with HostileServer(busy) as server, caplog.at_level(logging.DEBUG, "callm"):
        base_url = f"http://proxy-user:{password}@127.0.0.1:{server.port}/v1?token={token}"
        providers = {"behind-proxy": {"base_url": base_url, "key_required": False}}
        with callm.Client(providers=providers, max_retries=1) as client:
            request = client.http_request("behind-proxy/m", "hi")
            with pytest.raises(callm.APIError) as info:
                client.complete("behind-proxy/m", "hi")
            endpoint = client.settings.endpoint("behind-proxy")
    received = server.received[0]
    assert received.path == f"/v1/chat/completions?token={token}"
    credentials = base64.b64encode(f"proxy-user:{password}".encode()).decode()
    assert received.headers["authorization"] == f"Basic {credentials}"
    shown = [str(info.value), repr(info.value), caplog.text, repr(request), repr(endpoint)]
    assert "retry 1/1" in caplog.text
    for text in shown:
        assert password not in text and token not in text and credentials not in text
    stored = stored_bytes(isolated_env)
    assert password.encode() not in stored and token.encode() not in stored


def test_basic_auth_in_a_base_url_cannot_clash_with_a_bearer_key() -> None:
    providers = {"p": {"base_url": "http://u:secretpass@127.0.0.1:9/v1", "api_key": "k" * 20}}
    with pytest.raises(callm.ConfigurationError, match="user:password") as info:
        callm.Client(providers=providers).complete("p/m", "hi")
    assert "secretpass" not in str(info.value)


def test_a_token_from_a_token_provider_is_scrubbed(isolated_env: Path) -> None:
    token = alnum_key(48)
    with HostileServer(echo_key_in_error) as server:
        providers = {"entra": {"base_url": server.base_url, "token_provider": lambda: token}}
        client = callm.Client(providers=providers, max_retries=0)
        with client, pytest.raises(callm.AuthenticationError) as info:
            client.complete("entra/m", "hi")
    assert server.received[0].headers["authorization"] == f"Bearer {token}"
    assert token not in str(info.value) and token not in json.dumps(info.value.body)
    assert token.encode() not in stored_bytes(isolated_env)
