"""Every Fault, as a client sees it on the wire."""

from __future__ import annotations

import json
import time

import httpx2
import pytest

from callm.testing import Fault, Reply

CHAT = "/v1/chat/completions"
BODY = {"model": "m", "messages": [{"role": "user", "content": "hello there"}]}
STREAM_BODY = {**BODY, "stream": True}


def _error_of(response: httpx2.Response) -> dict[str, object]:
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


@pytest.mark.parametrize(
    ("fault", "status", "type_", "code"),
    [
        (Fault.rate_limit(), 429, "requests", "rate_limit_exceeded"),
        (Fault.server_error(), 500, "server_error", None),
        (Fault.server_error(status=502), 502, "server_error", None),
        (Fault.overloaded(), 503, "server_error", None),
        (Fault.unauthorized(), 401, "invalid_request_error", "invalid_api_key"),
        (Fault.context_length(), 400, "invalid_request_error", "context_length_exceeded"),
        (Fault.not_found(), 404, "invalid_request_error", "model_not_found"),
        (Fault.status(418, "teapot"), 418, "invalid_request_error", None),
    ],
)
def test_status_faults(api, fault, status, type_, code):
    api.server.queue(fault)
    response = api.post(CHAT, BODY)
    assert response.status_code == status
    assert response.headers["x-request-id"].startswith("req_")
    error = _error_of(response)
    assert (error["type"], error["code"]) == (type_, code)
    assert error["message"]
    # The fault is used up: the next request gets a normal answer.
    assert api.post(CHAT, BODY).status_code == 200


def test_context_length_uses_openais_message(api):
    api.server.queue(Fault.context_length())
    message = _error_of(api.post(CHAT, BODY))["message"]
    assert message == (
        "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in 130000 tokens. Please reduce the length of the messages."
    )


def test_status_fault_retry_headers(api):
    api.server.queue(
        Fault.status(
            503,
            "busy",
            type="overloaded",
            code_str="busy_now",
            headers={"x-extra": "1"},
            retry_after=2,
            retry_after_ms=1500,
            should_retry=False,
        ),
        Fault.rate_limit(retry_after=0.5),
        Fault.server_error(should_retry=True),
    )
    first = api.post(CHAT, BODY)
    assert first.headers["retry-after"] == "2"
    assert first.headers["retry-after-ms"] == "1500"
    assert first.headers["x-should-retry"] == "false"
    assert first.headers["x-extra"] == "1"
    assert _error_of(first) == {
        "message": "busy",
        "type": "overloaded",
        "param": None,
        "code": "busy_now",
    }
    assert api.post(CHAT, BODY).headers["retry-after"] == "0.5"
    third = api.post(CHAT, BODY)
    assert third.headers["x-should-retry"] == "true"
    assert "retry-after" not in third.headers


def test_status_fault_on_a_stream_is_a_plain_error(api):
    api.server.queue(Fault.rate_limit())
    response = api.post(CHAT, STREAM_BODY)
    assert response.status_code == 429
    assert _error_of(response)["code"] == "rate_limit_exceeded"


def test_disconnect_sends_nothing(api):
    api.server.queue(Fault.disconnect())
    with pytest.raises(httpx2.RemoteProtocolError):
        api.post(CHAT, BODY)
    assert len(api.server.requests) == 1
    assert api.post(CHAT, BODY).status_code == 200


def _read_broken_stream(api) -> bytes:
    """Stream a chat answer that must break off; return the bytes that did arrive."""
    received = bytearray()

    def read() -> None:
        url = api.server.base_url + "/chat/completions"
        with api.client.stream("POST", url, json=STREAM_BODY) as response:
            assert response.status_code == 200
            for piece in response.iter_bytes():
                received.extend(piece)

    with pytest.raises(httpx2.RemoteProtocolError, match="incomplete chunked read"):
        read()
    return bytes(received)


def test_drop_mid_stream_breaks_the_chunked_body(api):
    api.server.queue(Fault.drop_mid_stream(after_chunks=2, reply=Reply("a b c d e")))
    payloads = api.sse_data(_read_broken_stream(api))
    assert len(payloads) == 2
    assert json.loads(payloads[1])["choices"][0]["delta"] == {"content": "a"}


def test_drop_past_the_end_still_withholds_done(api):
    api.server.queue(Fault.drop_mid_stream(after_chunks=99, reply=Reply("a")))
    payloads = api.sse_data(_read_broken_stream(api))
    assert json.loads(payloads[-1])["choices"][0]["finish_reason"] == "stop"
    assert "[DONE]" not in payloads


def test_drop_on_a_json_request_sends_half_a_body(api):
    api.server.queue(Fault.drop_mid_stream(after_chunks=0))
    with pytest.raises(httpx2.RemoteProtocolError, match=r"received \d+ bytes, expected \d+"):
        api.post(CHAT, BODY)


def test_stream_error_event_then_done(api):
    api.server.queue(Fault.stream_error(after_chunks=2, message="boom"))
    payloads = api.stream(**BODY)
    assert len(payloads) == 4
    assert "choices" in json.loads(payloads[1])
    assert json.loads(payloads[2]) == {
        "error": {"message": "boom", "type": "server_error", "param": None, "code": None}
    }
    assert payloads[3] == "[DONE]"


def test_stream_error_on_a_json_request_is_a_500(api):
    api.server.queue(Fault.stream_error(after_chunks=1, message="boom"))
    response = api.post(CHAT, BODY)
    assert response.status_code == 500
    assert _error_of(response)["message"] == "boom"


@pytest.mark.parametrize("stream", [False, True])
def test_slow_first_byte_delays_then_answers(api, stream):
    api.server.queue(Fault.slow_first_byte(0.3, reply=Reply("late")))
    started = time.perf_counter()
    response = api.post(CHAT, {**BODY, "stream": stream})
    assert time.perf_counter() - started >= 0.28
    assert response.status_code == 200
    assert "late" in response.text


def test_slow_first_byte_trips_a_read_timeout(api):
    api.server.queue(Fault.slow_first_byte(0.4))
    with pytest.raises(httpx2.ReadTimeout):
        api.post(CHAT, BODY, timeout=httpx2.Timeout(5.0, read=0.1))


def test_stall_pauses_mid_stream_then_finishes(api):
    api.server.queue(Fault.stall(after_chunks=2, seconds=0.4, reply=Reply("a b c")))
    arrivals: list[tuple[float, bytes]] = []
    started = time.perf_counter()
    with api.client.stream(
        "POST", api.server.base_url + "/chat/completions", json=STREAM_BODY
    ) as r:
        for piece in r.iter_bytes():
            arrivals.append((time.perf_counter() - started, piece))
    before = b"".join(p for t, p in arrivals if t < 0.2)
    assert len(api.sse_data(before)) == 2  # exactly the chunks sent before the pause
    payloads = api.sse_data(b"".join(p for _, p in arrivals))
    assert payloads[-1] == "[DONE]"
    assert arrivals[-1][0] >= 0.38


def test_stall_trips_an_idle_timeout(api):
    api.server.queue(Fault.stall(after_chunks=1, seconds=0.4))
    timeout = httpx2.Timeout(5.0, read=0.1)
    with (
        pytest.raises(httpx2.ReadTimeout),
        api.client.stream(
            "POST", api.server.base_url + "/chat/completions", json=STREAM_BODY, timeout=timeout
        ) as r,
    ):
        for _ in r.iter_bytes():
            pass


def test_stall_on_a_json_request_pauses_mid_body(api):
    api.server.queue(Fault.stall(after_chunks=0, seconds=0.3, reply=Reply("whole")))
    started = time.perf_counter()
    response = api.post(CHAT, BODY)
    assert time.perf_counter() - started >= 0.28
    assert response.json()["choices"][0]["message"]["content"] == "whole"


def test_malformed_json_body(api):
    api.server.queue(Fault.malformed_json())
    response = api.post(CHAT, BODY)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.text.startswith('{"id":"chatcmpl-')
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


def test_malformed_json_event_in_a_stream(api):
    api.server.queue(Fault.malformed_json(after_chunks=1))
    payloads = api.stream(**BODY)
    assert json.loads(payloads[0])["choices"][0]["delta"]["role"] == "assistant"
    assert payloads[1:] == ["{not json", "[DONE]"]


def test_faults_are_recorded_and_consumed_in_order(api):
    api.server.queue(Fault.server_error(), Fault.rate_limit(), Reply("ok"))
    statuses = [api.post(CHAT, BODY).status_code for _ in range(3)]
    assert statuses == [500, 429, 200]
    assert len(api.server.requests) == 3


def test_faults_are_frozen():
    fault = Fault.rate_limit()
    with pytest.raises(AttributeError):
        fault.status_code = 200  # type: ignore[misc]
