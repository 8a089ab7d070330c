"""Bad input gets a clear error, never a traceback from deep inside: mistyped or non-finite
parameters, messages that are not messages, text that is not Unicode, config values of the
wrong type, files that are not UTF-8, and model names that would rewrite a URL."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pytest

import callm
from callm.testing import FakeOpenAIServer
from helpers import FAKE_KEY, fake_provider, point_builtins


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"temperature": math.nan}, "temperature must be a finite number"),
        ({"temperature": "hot"}, "temperature must be a finite number"),
        ({"top_p": math.inf}, "top_p must be a finite number"),
        ({"max_tokens": "10"}, "max_tokens must be a whole number"),
        ({"max_tokens": 0}, "max_tokens must be a whole number of at least 1"),
        ({"seed": 1.5}, "seed must be a whole number"),
        ({"stop": 5}, "stop must be a string or a list of strings"),
        ({"extra_body": {"penalty": math.nan}}, "a number JSON cannot carry"),
        ({"timeout": "5"}, "timeout must be a number of seconds"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_bad_parameters_are_refused_before_sending(
    fake_openai: FakeOpenAIServer, params: dict[str, Any], said: str
) -> None:
    client = callm.Client(providers=fake_provider(fake_openai.base_url))
    with pytest.raises(callm.InvalidRequestError, match=said):
        client.complete("fake/m", "hi", **params)
    assert fake_openai.requests == []  # nothing invalid went out


@pytest.mark.parametrize(
    "messages",
    [None, 42, "lone \ud800 surrogate", [{"role": "user", "content": "bad \udcff byte"}]],
    ids=["none", "int", "surrogate", "surrogate-in-dict"],
)
def test_messages_that_are_not_messages_or_not_unicode_are_refused(
    fake_openai: FakeOpenAIServer, messages: Any
) -> None:
    client = callm.Client(providers=fake_provider(fake_openai.base_url))
    with pytest.raises(callm.InvalidRequestError):
        client.complete("fake/m", messages)
    assert fake_openai.requests == []


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        ({"base_url": 5}, "base_url must be text"),
        ({"headers": [1, 2]}, "headers must be a table of text"),
        ({"headers": {"x-a": 1}}, "headers must be a table of text"),
        ({"key_required": "no"}, "key_required must be true or false"),
        ({"api_key_env": 5}, "api_key_env must be"),
        ({"quirks": 5}, "quirks must be"),
        ({"auth": "magic"}, "auth must be one of"),
    ],
    ids=lambda v: str(v)[:24],
)
def test_config_values_of_the_wrong_type_are_refused(entry: dict[str, Any], said: str) -> None:
    providers = {"p": {"base_url": "http://127.0.0.1:9/v1", "api_key": FAKE_KEY, **entry}}
    with pytest.raises(callm.ConfigurationError, match=said) as info:
        callm.Client(providers=providers).settings.endpoint("p")
    assert "provider 'p'" in str(info.value)


def test_unknown_top_level_config_keys_are_warned(
    isolated_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    isolated_env.mkdir(parents=True, exist_ok=True)
    (isolated_env / "config.toml").write_text('default_modle = "openai/gpt-4o"\n')
    with caplog.at_level(logging.WARNING, "callm"):
        callm.Client()
    assert "default_modle" in caplog.text and "config.toml" in caplog.text


@pytest.mark.parametrize("name", ["config.toml", "keys.json", ".env"])
def test_files_that_are_not_utf8_are_a_configuration_error(
    isolated_env: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolated_env.mkdir(parents=True, exist_ok=True)
    where = Path.cwd() / name if name == ".env" else isolated_env / name
    where.write_bytes(b"\xff\xfe not utf-8 \xc3\x28")
    with pytest.raises(callm.ConfigurationError, match="UTF-8") as info:
        callm.Client().complete("openai/gpt-4o-mini", "hi")  # no key set: the keys file is read
    assert str(where) in str(info.value)


def test_a_callm_home_that_is_a_file_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "not-a-folder"
    home.write_text("oops")
    monkeypatch.setenv("CALLM_HOME", str(home))
    with pytest.raises(callm.ConfigurationError, match="CALLM_HOME"):
        callm.Client()


@pytest.mark.parametrize(
    "model",
    ["gemini-2.5-flash?key=stolen", "../../v1beta/files", "tunedModels/x?alt=json"],
    ids=["query", "dotdot", "tuned-query"],
)
def test_a_gemini_model_name_cannot_rewrite_the_url(
    fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch, model: str
) -> None:
    point_builtins(fake_openai, monkeypatch)
    request = callm.Client().http_request(f"gemini/{model}", "hi")
    path = request.url.removeprefix(fake_openai.url + "/v1beta")
    assert path.count("?") == 0 and ".." not in path.split("/")
    assert path.endswith(":generateContent")
    assert path.startswith(("/models/", "/tunedModels/"))
    assert len(path.split("/")) == 3  # the name stays one path segment


def test_an_azure_deployment_name_cannot_rewrite_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://example.openai.azure.com")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "0" * 32)
    request = callm.Client().http_request("azure/dep?x=1/../..", "hi")
    assert request.url.startswith("https://example.openai.azure.com/openai/deployments/dep%3F")
    assert request.url.count("?") == 1  # only the api-version query
