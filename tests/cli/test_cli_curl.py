"""``curl_command``: a pure function, checked by letting a shell parse its output."""

from __future__ import annotations

import shlex

from callm._core.http import HttpRequest
from callm.cli._curl import curl_command

SECRET = "sk-very-secret-0123456789"


def words(command: str) -> list[str]:
    """The arguments a POSIX shell would see (line continuations removed)."""
    return shlex.split(command.replace(" \\\n  ", " "))


def chat_request(**kwargs: object) -> HttpRequest:
    values: dict[str, object] = {
        "method": "POST",
        "url": "https://api.example.com/v1/chat/completions",
        "headers": {"content-type": "application/json", "authorization": f"Bearer {SECRET}"},
        "body": b'{"model":"m","messages":[{"role":"user","content":"it\'s \\"quoted\\""}]}',
        "secret_headers": frozenset({"authorization"}),
    }
    values.update(kwargs)
    return HttpRequest(**values)  # type: ignore[arg-type]


def test_the_key_becomes_an_environment_reference() -> None:
    request = chat_request()
    command = curl_command(request, key_env="OPENAI_API_KEY")
    assert SECRET not in command
    assert '-H "authorization: Bearer $OPENAI_API_KEY"' in command
    assert words(command) == [
        "curl",
        request.url,
        "-H",
        "content-type: application/json",
        "-H",
        "authorization: Bearer $OPENAI_API_KEY",
        "--data-raw",
        request.body.decode(),  # type: ignore[union-attr]
    ]


def test_without_a_variable_to_name_the_key_is_stars() -> None:
    command = curl_command(chat_request())
    assert SECRET not in command
    assert "-H 'authorization: Bearer ***'" in command


def test_a_plain_key_header_is_replaced_whole() -> None:
    request = chat_request(
        headers={"api-key": SECRET}, secret_headers=frozenset({"api-key"}), body=None
    )
    assert words(curl_command(request, key_env="AZURE_OPENAI_API_KEY")) == [
        "curl",
        request.url,
        "-X",
        "POST",
        "-H",
        "api-key: $AZURE_OPENAI_API_KEY",
    ]
    assert "api-key: ***" in curl_command(request, key_env="not a name; rm -rf ~")


def test_a_get_needs_no_method_and_a_key_in_the_url_is_hidden() -> None:
    request = HttpRequest("GET", f"https://g.example.com/v1/models?key={SECRET}&x=1", {})
    command = curl_command(request)
    assert SECRET not in command
    assert words(command) == ["curl", "https://g.example.com/v1/models?key=***&x=1"]
