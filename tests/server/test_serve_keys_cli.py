"""``callm serve keys …`` and ``callm serve usage`` against a running gateway (click's
CliRunner in process, the gateway as a subprocess on loopback)."""

from __future__ import annotations

import json

import openai
import pytest
from click.testing import CliRunner
from gateway_process import MASTER_KEY, GatewayProcess

from callm.cli import cli

HI = [{"role": "user", "content": "Hi"}]


def run(
    gateway: GatewayProcess, *args: str, master: str | None = MASTER_KEY
) -> tuple[int, str, str]:
    env = {"CALLM_GATEWAY_URL": gateway.url, "CALLM_MASTER_KEY": master}
    result = CliRunner().invoke(cli, ["serve", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def call(gateway: GatewayProcess, key: str, model: str = "openai/gpt-4o-mini") -> int:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    try:
        client.chat.completions.create(model=model, messages=HI)  # type: ignore[arg-type]
    except openai.APIStatusError as exc:
        return exc.status_code
    finally:
        client.close()
    return 200


def test_create_prints_the_key_once_and_it_works(gateway: GatewayProcess) -> None:
    code, out, err = run(
        gateway, "keys", "create", "--name", "cli-app", "--models", "openai/*", "--budget", "10"
    )
    assert code == 0, err
    key = out.strip()
    assert key.startswith("sk-callm-") and "\n" not in key
    assert "not shown again" in err and key not in err
    assert call(gateway, key) == 200
    assert call(gateway, key, "anthropic/claude-sonnet-4-5") == 403  # outside its globs

    code, out, _ = run(gateway, "keys", "list", "--json")
    assert code == 0
    listed = {k["name"]: k for k in json.loads(out)}
    mine = listed["cli-app"]
    assert mine["models"] == ["openai/*"] and mine["budget_usd"] == "10"
    assert key not in out and key[:13] == mine["prefix"]


def test_update_and_revoke_take_effect_at_once(gateway: GatewayProcess) -> None:
    code, out, _ = run(gateway, "keys", "create", "--name", "short-lived", "--json")
    assert code == 0
    made = json.loads(out)
    assert call(gateway, made["key"]) == 200

    code, out, _ = run(gateway, "keys", "update", made["id"], "--models", "gemini/*")
    assert code == 0 and "gemini/*" in out
    assert call(gateway, made["key"]) == 403

    code, _, err = run(gateway, "keys", "revoke", made["id"])
    assert code == 0 and made["id"] in err
    assert call(gateway, made["key"]) == 401
    code, out, _ = run(gateway, "keys", "list")
    assert made["id"] not in out

    code, _, err = run(gateway, "keys", "show", made["id"])
    assert code == 1 and "404" in err


def test_usage_shows_the_calls_of_each_key(gateway: GatewayProcess) -> None:
    code, out, _ = run(gateway, "keys", "create", "--json")
    made = json.loads(out)
    assert call(gateway, made["key"]) == 200
    code, out, _ = run(gateway, "usage", "--json")
    assert code == 0
    rows = [r for r in json.loads(out) if r["key_id"] == made["id"]]
    assert rows and rows[0]["calls"] == 1


@pytest.mark.parametrize(
    ("args", "master", "said"),
    [
        (("keys", "list"), None, "set CALLM_MASTER_KEY"),
        (("keys", "list"), "not-the-master-key-at-all", "401"),
        (("keys", "create", "--budget", "lots"), MASTER_KEY, "budget_usd"),
        (("keys", "update", "key_0000000000000000"), MASTER_KEY, "nothing to change"),
    ],
)
def test_mistakes_are_one_line_that_says_what_to_do(
    gateway: GatewayProcess, args: tuple[str, ...], master: str | None, said: str
) -> None:
    code, out, err = run(gateway, *args, master=master)
    assert code in (1, 2)
    assert said in err and out == ""
    assert MASTER_KEY not in err


def test_no_gateway_there() -> None:
    result = CliRunner().invoke(
        cli,
        ["serve", "keys", "list", "--url", "http://127.0.0.1:9"],
        env={"CALLM_MASTER_KEY": MASTER_KEY},
    )
    assert result.exit_code == 1
    assert "could not reach the gateway at http://127.0.0.1:9" in result.stderr
