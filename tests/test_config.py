"""Keys, endpoints and providers: env vars, .env, keys file, config file, arguments, Azure."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

import callm
from callm._config.settings import KeyStore
from callm.testing import FakeOpenAIServer, Reply
from helpers import FAKE_KEY


def test_missing_key_names_the_env_var_and_the_command() -> None:
    client = callm.Client()
    with pytest.raises(callm.ConfigurationError) as info:
        client.complete("openai/gpt-4o-mini", "hi")
    assert "OPENAI_API_KEY" in str(info.value)
    assert "callm keys set openai" in str(info.value)


@pytest.mark.parametrize(
    ("provider", "env"),
    [
        ("groq", "GROQ_API_KEY"),
        ("mistral", "MISTRAL_API_KEY"),
        ("deepseek", "DEEPSEEK_API_KEY"),
        ("openrouter", "OPENROUTER_API_KEY"),
        ("together", "TOGETHER_API_KEY"),
        ("xai", "XAI_API_KEY"),
        ("azure", "AZURE_OPENAI_API_KEY"),
    ],
)
def test_every_builtin_provider_asks_for_its_own_key(
    provider: str, env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com")
    with pytest.raises(callm.ConfigurationError, match=env):
        callm.Client().complete(f"{provider}/some-model", "hi")


def test_unknown_provider_and_bad_model_name() -> None:
    client = callm.Client()
    with pytest.raises(callm.ConfigurationError, match=r"unknown provider 'nope'.*known providers"):
        client.complete("nope/model", "hi")
    with pytest.raises(callm.ConfigurationError, match="provider/model"):
        client.complete("gpt-4o-mini", "hi")


def test_env_vars_route_openai_to_a_base_url(
    fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url + "/")
    fake_openai.queue(Reply("via env"))
    assert callm.Client().complete("openai/gpt-4o-mini", "hi").text == "via env"
    assert fake_openai.requests[0].headers["authorization"] == f"Bearer {FAKE_KEY}"


def test_dotenv_file_supplies_keys(fake_openai: FakeOpenAIServer, isolated_env: Path) -> None:
    Path(".env").write_text(f"GROQ_API_KEY={FAKE_KEY}\nGROQ_BASE_URL={fake_openai.base_url}\n")
    fake_openai.queue(Reply("from .env"))
    r = callm.Client().complete("groq/llama-3.3-70b", "hi")
    assert r.text == "from .env"
    assert fake_openai.requests[0].headers["authorization"] == f"Bearer {FAKE_KEY}"


def test_real_env_wins_over_dotenv(
    fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path(".env").write_text(
        f"OPENAI_API_KEY=sk-from-dotenv\nOPENAI_BASE_URL={fake_openai.base_url}\n"
    )
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    callm.Client().complete("openai/m", "hi")
    assert fake_openai.requests[0].headers["authorization"] == f"Bearer {FAKE_KEY}"


def test_keys_file_is_used_and_private(
    fake_openai: FakeOpenAIServer, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = KeyStore(isolated_env)
    store.set("openai", "sk-stored-fake")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    callm.Client().complete("openai/m", "hi")
    assert fake_openai.requests[0].headers["authorization"] == "Bearer sk-stored-fake"
    assert store.remove("openai") is True
    with pytest.raises(callm.ConfigurationError):
        callm.Client().complete("openai/m", "hi")


def test_user_defined_provider_from_the_config_file(
    fake_openai: FakeOpenAIServer, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolated_env.mkdir(parents=True, exist_ok=True)
    (isolated_env / "config.toml").write_text(
        "[providers.myvllm]\n"
        f'base_url = "{fake_openai.base_url}"\n'
        'api_key_env = "MYVLLM_KEY"\n'
        'headers = {"X-Team" = "search"}\n'
    )
    monkeypatch.setenv("MYVLLM_KEY", FAKE_KEY)
    r = callm.Client().complete("myvllm/qwen3", "hi")
    assert r.provider == "myvllm"
    seen = fake_openai.requests[0]
    assert seen.headers["x-team"] == "search"
    assert seen.json["model"] == "qwen3"


def test_malformed_config_file_is_a_clear_error(isolated_env: Path) -> None:
    isolated_env.mkdir(parents=True, exist_ok=True)
    (isolated_env / "config.toml").write_text("[providers.x\nbase_url = 1\n")
    with pytest.raises(callm.ConfigurationError, match=r"config\.toml is not valid TOML"):
        callm.Client()


def test_bad_provider_settings_are_named() -> None:
    with pytest.raises(callm.ConfigurationError, match=r"unknown setting.*base_ulr"):
        callm.Client(providers={"x": {"base_ulr": "http://127.0.0.1"}})
    with pytest.raises(callm.ConfigurationError, match="needs a base_url"):
        callm.Client(providers={"x": {"api_key": "k"}})
    with pytest.raises(callm.ConfigurationError, match="unknown protocol"):
        callm.Client(providers={"x": {"base_url": "http://h", "protocol": "smtp"}})


def test_provider_spec_objects_are_accepted(fake_openai: FakeOpenAIServer) -> None:
    spec = callm.ProviderSpec("ignored-name", fake_openai.base_url, api_key="sk-x-fake")
    r = callm.Client(providers={"mine": spec}).complete("mine/m", "hi")
    assert r.provider == "mine"


def test_ollama_needs_no_key_and_sends_max_tokens(
    fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_BASE_URL", fake_openai.base_url)
    callm.Client().complete("ollama/llama3.2", "hi", max_tokens=5)
    seen = fake_openai.requests[0]
    assert "authorization" not in seen.headers
    assert seen.json["max_tokens"] == 5 and "max_completion_tokens" not in seen.json


def test_mistral_quirks_on_the_wire(
    fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MISTRAL_API_KEY", FAKE_KEY)
    monkeypatch.setenv("MISTRAL_BASE_URL", fake_openai.base_url)
    history = [
        callm.Message.user("x"),
        callm.Message.assistant(callm.ToolCall("call_abcdefghijklmnop", "f", {})),
        callm.Message.tool("call_abcdefghijklmnop", "done"),
    ]
    with callm.Client().stream("mistral/mistral-small", history, seed=3) as s:
        s.response  # noqa: B018 — drain the stream
    body = fake_openai.requests[0].json
    assert body["random_seed"] == 3 and "seed" not in body
    assert "stream_options" not in body
    call_id = body["messages"][1]["tool_calls"][0]["id"]
    assert len(call_id) == 9 and call_id.isalnum()
    assert body["messages"][2]["tool_call_id"] == call_id


def test_azure_deployment_urls_api_version_and_api_key(
    fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", fake_openai.url)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("OPENAI_API_VERSION", "2024-10-21")
    r = callm.Client().complete("azure/my-gpt4o", "hi")
    assert r.provider == "azure"
    seen = fake_openai.requests[0]
    assert seen.path == "/openai/deployments/my-gpt4o/chat/completions"
    assert seen.query == {"api-version": "2024-10-21"}
    assert seen.headers["api-key"] == FAKE_KEY
    assert "authorization" not in seen.headers


def test_azure_entra_id_token_provider(fake_openai: FakeOpenAIServer) -> None:
    tokens = iter(["aad-token-1", "aad-token-2"])
    client = callm.Client(
        providers={"azure": {"base_url": fake_openai.url, "token_provider": lambda: next(tokens)}}
    )
    client.complete("azure/dep", "one")
    client.complete("azure/dep", "two")
    first, second = fake_openai.requests
    assert first.headers["authorization"] == "Bearer aad-token-1"
    assert second.headers["authorization"] == "Bearer aad-token-2"
    assert "api-key" not in first.headers
    assert first.query["api-version"]


def test_azure_v1_style_base_url(
    fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", fake_openai.url + "/openai/v1")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", FAKE_KEY)
    callm.Client().complete("azure/my-deployment", "hi")
    seen = fake_openai.requests[0]
    assert seen.path == "/openai/v1/chat/completions"
    assert seen.query == {}
    assert seen.json["model"] == "my-deployment"


def test_azure_without_endpoint_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", FAKE_KEY)
    with pytest.raises(callm.ConfigurationError, match="AZURE_OPENAI_ENDPOINT"):
        callm.Client().complete("azure/dep", "hi")


def test_default_model_is_offline_local_with_one_notice(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import callm._engine.client as client_module

    monkeypatch.setattr(client_module, "_notice_shown", False)
    with caplog.at_level(logging.WARNING, logger="callm"):
        client = callm.Client()
        first = client.complete(None, "hello offline")
        client.complete(None, "again")
    assert first.provider == "local"
    assert first.text.startswith("[offline]")
    notices = [r for r in caplog.records if "offline local model" in r.getMessage()]
    assert len(notices) == 1
    assert "callm keys set" in notices[0].getMessage()


def test_default_model_prefers_a_configured_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", FAKE_KEY)
    assert callm.Client().settings.default_model() == ("local/offline", True)  # groq has no default
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    assert callm.Client().settings.default_model() == ("openai/gpt-4o-mini", False)
    monkeypatch.setenv("CALLM_MODEL", "groq/llama-3.3-70b")
    assert callm.Client().settings.default_model() == ("groq/llama-3.3-70b", False)
