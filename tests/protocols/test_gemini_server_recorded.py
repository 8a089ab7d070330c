"""The Gemini server codec against real recorded traffic (generativelanguage.googleapis.com,
via pydantic-ai's VCR files in ../shared/fixtures).

- Every recorded request body decodes; sent again by the client codec it is the recorded
  body, up to what Gemini reads alike (the ``role`` of a system instruction, an empty
  ``generationConfig``) and the documented choices of the codec: a structured function
  response travels as ``{"output": <its JSON>}``, an OpenAPI ``responseSchema`` as the JSON
  Schema it means.
- Every recorded reply, decoded by the client codec, encoded by the server codec and
  decoded again, is the same Response, and its parts are the recorded parts.
- Every recorded stream, decoded into events and encoded again, decodes to the same events
  and the same Response. (The recordings hold no Gemini error; errors are checked against
  the google-genai SDK in test_gemini_server.)
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from codec_checks import (
    FIXTURES,
    MISSING,
    endpoint,
    feed_stream,
    http_json,
    joined,
    plain_calls,
    unsigned,
)

from callm.protocols.gemini import client, server
from callm.protocols.gemini.stream import GeminiStreamDecoder

yaml = pytest.importorskip("yaml")

RECORDED = FIXTURES / "google"
ENDPOINT = endpoint("gemini")
METHOD = re.compile(r"^https://generativelanguage\.googleapis\.com/.*models/([^:/?]+):(\w+)")


@functools.cache
def load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        data = yaml.safe_load(f)
    return [i for i in data.get("interactions") or () if METHOD.match(i["request"]["uri"])]


def cases(wanted: Any) -> list[Any]:
    if not RECORDED.is_dir():
        return [pytest.param(None, id="fixtures-missing")]
    out = []
    for path in sorted(RECORDED.glob("*.yaml")):
        for n, interaction in enumerate(load(path)):
            if wanted(interaction):
                out.append(pytest.param(interaction, id=f"{path.stem}-{n}"))
    return out


def present(interaction: Any) -> Mapping[str, Any]:
    if interaction is None:
        pytest.skip(MISSING)
    return interaction  # type: ignore[no-any-return]


def method(interaction: Mapping[str, Any]) -> tuple[str, str]:
    match = METHOD.match(interaction["request"]["uri"])
    assert match is not None
    return match.group(1), match.group(2)


def is_request(interaction: Mapping[str, Any]) -> bool:
    return isinstance(interaction["request"].get("parsed_body"), dict)


def is_reply(interaction: Mapping[str, Any]) -> bool:
    return interaction["response"]["status"]["code"] == 200 and "Content" in method(interaction)[1]


# --- requests -----------------------------------------------------------------------------


def same_meaning(body: Mapping[str, Any]) -> dict[str, Any]:
    """The recorded body in the spelling the client codec writes (see the module notes)."""
    body = json.loads(json.dumps(body))
    body = body.get("generateContentRequest", body)
    body.pop("model", None)
    if isinstance(body.get("systemInstruction"), dict):
        body["systemInstruction"].pop("role", None)
    if body.get("generationConfig") == {}:
        del body["generationConfig"]
    config = body.get("generationConfig") or {}
    if "responseSchema" in config:
        config["responseJsonSchema"] = json_schema_of(config.pop("responseSchema"))
    contents = []
    for content in body.get("contents", []):
        content.setdefault("role", "user")
        for part in content.get("parts", []):
            _output(part.get("functionResponse"))
        if contents and contents[-1]["role"] == content["role"]:
            contents[-1]["parts"] += content["parts"]
        else:
            contents.append(content)
    body["contents"] = contents
    return body


def _output(response: Any) -> None:
    if not isinstance(response, dict):
        return
    inner = response.get("response")
    if isinstance(inner, dict) and len(inner) == 1:
        key, value = next(iter(inner.items()))
        if key in ("output", "error") and isinstance(value, str):
            return
    compact = json.dumps(inner, separators=(",", ":"), ensure_ascii=False)
    response["response"] = {"output": compact}


def json_schema_of(schema: Any) -> Any:
    """Gemini's OpenAPI Schema as JSON Schema, written here independently of the codec:
    lower-case types, ``nullable`` as a null type, no ``propertyOrdering``."""
    if isinstance(schema, list):
        return [json_schema_of(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for spelt, value in schema.items():
        key = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), spelt)
        if key in ("propertyOrdering", "property_ordering", "nullable"):
            continue
        if key == "type":
            out[key] = value.lower()
        elif key == "properties":
            out[key] = {k: json_schema_of(v) for k, v in value.items()}
        elif key in ("items", "anyOf"):
            out[key] = json_schema_of(value)
        else:
            out[key] = value
    if schema.get("nullable"):
        out["type"] = [out["type"], "null"]
    return out


@pytest.mark.parametrize("interaction", cases(is_request))
def test_recorded_requests_decode_and_encode_back_to_the_recorded_body(interaction: Any) -> None:
    request = present(interaction)["request"]
    model, _ = method(interaction)
    decoded = server.decode_request(request["parsed_body"], model=model)
    assert decoded.model == model
    assert client.encode_body(ENDPOINT, decoded) == same_meaning(request["parsed_body"])


def test_the_recordings_still_hold_what_the_test_above_checks() -> None:
    if not RECORDED.is_dir():
        pytest.skip(MISSING)
    seen = json.dumps([p.values[0]["request"]["parsed_body"] for p in cases(is_request)])
    for key in ("functionCall", "functionResponse", "thoughtSignature", "inlineData", "fileData"):
        assert key in seen, key
    assert len(cases(is_request)) >= 80


# --- replies ------------------------------------------------------------------------------


def _json(interaction: Mapping[str, Any]) -> bool:
    return "parsed_body" in interaction["response"]


@pytest.mark.parametrize("interaction", cases(lambda i: is_reply(i) and _json(i)))
def test_recorded_replies_encode_back_to_what_gemini_sent(interaction: Any) -> None:
    recorded = present(interaction)["response"]["parsed_body"]
    response = client.decode(ENDPOINT, http_json(recorded))
    body = server.encode_response(response, model=recorded.get("modelVersion", ""))
    again = client.decode(ENDPOINT, http_json(json.loads(json.dumps(body))))
    assert plain_calls(again.content) == plain_calls(response.content)
    assert (again.usage, again.finish_reason) == (response.usage, response.finish_reason)
    assert again.native_finish_reason == response.native_finish_reason
    if "candidates" not in recorded:
        assert body["promptFeedback"] == recorded["promptFeedback"]
        return
    wanted = recorded["candidates"][0]
    got = body["candidates"][0]
    assert got["finishReason"] == wanted["finishReason"]
    parts = (got.get("content") or {}).get("parts") or []
    for part in parts:  # callm names calls Gemini left without an id
        if "functionCall" in part and not _has_ids(wanted):
            del part["functionCall"]["id"]
    assert parts == ((wanted.get("content") or {}).get("parts") or [])


def _has_ids(candidate: Mapping[str, Any]) -> bool:
    parts = (candidate.get("content") or {}).get("parts") or []
    return any("id" in (p.get("functionCall") or {}) for p in parts)


def _sse(interaction: Mapping[str, Any]) -> bool:
    body = (interaction["response"].get("body") or {}).get("string")
    return isinstance(body, str) and body.lstrip().startswith("data:")


@pytest.mark.parametrize("interaction", cases(lambda i: is_reply(i) and _sse(i)))
def test_recorded_streams_encode_to_the_same_events_and_response(interaction: Any) -> None:
    data = present(interaction)["response"]["body"]["string"].encode()
    upstream = GeminiStreamDecoder(ENDPOINT)
    events = feed_stream(data, upstream)
    response = upstream.response()
    encoder = server.StreamEncoder(model=response.model)
    sent = encoder.start() + b"".join(encoder.encode(e) for e in events)
    sent += encoder.finish(response)
    caller = GeminiStreamDecoder(ENDPOINT)
    again = feed_stream(sent, caller, cuts=range(0, len(sent), 89))
    assert caller.finished
    assert joined(again) == joined(events)
    back = caller.response()
    assert (back.usage, back.finish_reason) == (response.usage, response.finish_reason)
    assert back.text == response.text
    assert _others(back) == _others(response)


def _others(response: Any) -> list[str]:
    return sorted(repr(p) for p in plain_calls(unsigned(response.content)) if p.kind != "text")
