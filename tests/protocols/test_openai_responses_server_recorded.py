"""The OpenAI Responses server codec against real recorded traffic (api.openai.com, via
pydantic-ai's VCR files in ../shared/fixtures).

- Every recorded request body decodes; the client codec sends it as a body that decodes to
  the same Request (its own spelling of the same thing: instructions for leading system
  messages, no ``stream: false`` …), keeping every call id, argument, reasoning id and
  encrypted reasoning in order.
- Every recorded reply, decoded by the client codec and encoded by the server codec, keeps
  the recorded items' ids, texts, calls, status and usage, and decodes to the same Response.
- Every recorded stream, decoded into events and encoded again, decodes to the same events
  and the same Response.
- Every recorded error is re-encoded with the same status and error type.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from codec_checks import FIXTURES, MISSING, endpoint, feed_stream, http_json, joined, plain_calls

from callm._core.http import HttpResponse
from callm.protocols.openai_responses import client, server
from callm.protocols.openai_responses.stream import ResponsesStreamDecoder

yaml = pytest.importorskip("yaml")

RECORDED = FIXTURES / "openai_responses"
ENDPOINT = endpoint("openai-responses")


@functools.cache
def load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        data = yaml.safe_load(f)
    return [i for i in data.get("interactions") or () if i["request"]["uri"].endswith("/responses")]


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


def is_request(interaction: Mapping[str, Any]) -> bool:
    return isinstance(interaction["request"].get("parsed_body"), dict)


def is_json_reply(interaction: Mapping[str, Any]) -> bool:
    response = interaction["response"]
    return response["status"]["code"] == 200 and isinstance(response.get("parsed_body"), dict)


def is_finished_reply(interaction: Mapping[str, Any]) -> bool:
    """A completed or cut-off reply: a failed or background one is no reply a gateway passes on."""
    if not is_json_reply(interaction):
        return False
    status = interaction["response"]["parsed_body"].get("status")
    return status in ("completed", "complete", "incomplete")


def is_stream(interaction: Mapping[str, Any]) -> bool:
    body = (interaction["response"].get("body") or {}).get("string")
    return isinstance(body, str) and "event: response.created" in body


def is_error(interaction: Mapping[str, Any]) -> bool:
    return interaction["response"]["status"]["code"] >= 400


# --- requests -----------------------------------------------------------------------------


def sent_again(body: Mapping[str, Any]) -> dict[str, Any]:
    decoded = server.decode_request(body)
    return json.loads(json.dumps(client.encode_body(decoded, ENDPOINT.quirks)))


def carried(body: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """What an upstream must get back exactly: calls, results and reasoning, in order."""
    items = body.get("input")
    out: list[tuple[Any, ...]] = []
    for item in items if isinstance(items, list) else ():
        kind = item.get("type")
        if kind == "function_call":
            out.append((kind, item["call_id"], item["name"], json.loads(item["arguments"] or "{}")))
        elif kind == "function_call_output":
            out.append((kind, item["call_id"], item["output"]))
        elif kind == "reasoning":
            out.append((kind, item["id"], item.get("encrypted_content")))
    return out


@pytest.mark.parametrize("interaction", cases(is_request))
def test_recorded_requests_decode_and_go_out_meaning_the_same(interaction: Any) -> None:
    body = present(interaction)["request"]["parsed_body"]
    decoded = server.decode_request(body)
    assert decoded.model == body["model"]
    assert decoded.stream is bool(body.get("stream"))
    again = sent_again(body)
    assert server.decode_request(again) == decoded
    assert sent_again(again) == again
    assert carried(again) == carried(body)
    for key in ("tools", "tool_choice", "max_output_tokens", "reasoning", "include", "store"):
        if body.get(key) is not None and key != "tools":
            assert again.get(key) == body[key], key
    assert [t["name"] for t in again.get("tools", ()) if t["type"] == "function"] == [
        t["name"] for t in body.get("tools") or () if t["type"] == "function"
    ]


def test_most_recorded_requests_are_covered() -> None:
    """A guard on the test above: the recordings still hold what it is meant to check."""
    if not RECORDED.is_dir():
        pytest.skip(MISSING)
    kinds = {
        k for p in cases(is_request) for k, *_ in carried(p.values[0]["request"]["parsed_body"])
    }
    assert kinds == {"function_call", "function_call_output", "reasoning"}
    assert len(cases(is_request)) >= 100


# --- replies ------------------------------------------------------------------------------


def _items(output: list[Any]) -> list[tuple[Any, ...]]:
    """The items' kinds, texts, calls and the ids a caller sends back: a reasoning item's
    and the one after it (callm keeps no other message ids; the gateway makes fresh ones)."""
    out: list[tuple[Any, ...]] = []
    after_reasoning = False
    for item in output:
        kind = item["type"]
        if kind == "message":
            texts = [c.get("text", c.get("refusal")) for c in item["content"]]
            out.append((kind, item["id"] if after_reasoning else None, texts))
        elif kind == "function_call":
            out.append((kind, item["call_id"], item["name"], item["arguments"]))
        elif kind == "reasoning":
            out.append((kind, item["id"], item.get("encrypted_content")))
        else:
            out.append((kind, item.get("id")))
        after_reasoning = kind == "reasoning"
    return out


@pytest.mark.parametrize("interaction", cases(is_finished_reply))
def test_recorded_replies_encode_back_to_what_openai_sent(interaction: Any) -> None:
    recorded = present(interaction)["response"]["parsed_body"]
    response = client.decode(ENDPOINT, http_json(recorded))
    body = server.encode_response(response, model=recorded["model"])
    assert body["id"] == recorded["id"]
    assert _items(body["output"]) == _items(recorded["output"])  # type: ignore[arg-type]
    status = "completed" if recorded["status"] in ("completed", "complete") else "incomplete"
    assert body["status"] == status
    usage: Any = body["usage"]
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        assert usage[key] == recorded["usage"][key], key
    again = client.decode(ENDPOINT, http_json(json.loads(json.dumps(body))))
    assert plain_calls(again.content) == plain_calls(response.content)
    assert (again.usage, again.finish_reason) == (response.usage, response.finish_reason)


@pytest.mark.parametrize("interaction", cases(is_stream))
def test_recorded_streams_encode_to_the_same_events_and_response(interaction: Any) -> None:
    data = present(interaction)["response"]["body"]["string"].encode()
    upstream = ResponsesStreamDecoder(ENDPOINT)
    events = feed_stream(data, upstream)
    response = upstream.response()
    encoder = server.StreamEncoder(model=response.model)
    sent = encoder.start() + b"".join(encoder.encode(e) for e in events)
    sent += encoder.finish(response)
    caller = ResponsesStreamDecoder(ENDPOINT)
    again = feed_stream(sent, caller, cuts=range(0, len(sent), 89))
    assert caller.finished
    assert joined(again) == joined(events)
    back = caller.response()
    assert back.text == response.text
    assert plain_calls(back.content) == plain_calls(response.content)
    assert (back.usage, back.finish_reason) == (response.usage, response.finish_reason)


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("interaction", cases(is_error))
def test_recorded_errors_encode_with_their_status_and_type(interaction: Any) -> None:
    response = present(interaction)["response"]
    status = response["status"]["code"]
    recorded = response.get("parsed_body")
    if recorded is None:
        recorded = json.loads(response["body"]["string"])
    error = client.decode_failure(ENDPOINT, HttpResponse(status, {}, json.dumps(recorded).encode()))
    sent_status, body = server.encode_error(error)
    assert sent_status == status
    inner: Any = body["error"]
    assert inner["type"] == recorded["error"]["type"]
    assert recorded["error"]["message"] in inner["message"]
    assert inner["code"] == recorded["error"]["code"]
