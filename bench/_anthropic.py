"""Section 5: the Anthropic Messages API — callm's Anthropic provider against the official SDK.

Same fake server, same port: ``POST {url}/v1/messages`` with ``x-api-key`` and
``anthropic-version``. Two timings, each in the interleaved-rounds style of sections 1-2:
sequential non-streaming requests/s (short prompt) and streamed text chunks/s (the long
prompt, ``max_tokens`` 200, so exactly 200 ``text_delta`` events per stream). Clients:
callm (built-in ``anthropic`` provider, urllib3 transport), raw httpx2 speaking the
Anthropic wire, and the official ``anthropic`` SDK (``max_retries=0``, its defaults
otherwise, ``messages.create`` / ``messages.create(stream=True)``). Raw urllib3 is a
reference row for the non-streaming part: what a minimal client on callm's transport gets.
"""

from __future__ import annotations

import json
import logging
import warnings
from typing import Any

from _common import BARE, LONG_PROMPT, MAX_TOKENS, SHORT_PROMPT, STREAM_MAX_TOKENS, TIMEOUT
from _rounds import Call, Close, Factory

#: A model name the SDK knows nothing about, so it warns about no deprecation.
MODEL = "claude-bench-1"
CALLM_MODEL = f"anthropic/{MODEL}"
API_KEY = "sk-ant-bench-fake"
VERSION = "2023-06-01"
#: The client name of the official SDK in ``--only``.
SDK = "anthropic"
_SIGN = "[offline]"


def _checked(text: str | None) -> int:
    if not text or not text.startswith(_SIGN):
        raise RuntimeError(f"unexpected reply text: {text!r}")
    return 1


def request_body(prompt: str, max_tokens: int, *, stream: bool = False) -> bytes:
    """The Messages API body the raw client sends; callm and the SDK build the same."""
    body: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": prompt}],
    }
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


def headers() -> dict[str, str]:
    return {
        "x-api-key": API_KEY,
        "anthropic-version": VERSION,
        "content-type": "application/json",
    }


def reply_text(body: bytes) -> str:
    """Text of a whole Messages reply: its text content blocks, joined."""
    data = json.loads(body)
    return "".join(b["text"] for b in data["content"] if b.get("type") == "text")


def sse_text(line: str) -> str | None:
    """Text of one SSE line: "" for anything but a text delta, None at ``message_stop``.

    ``event:`` lines are skipped; the ``data:`` JSON carries its own ``type``.
    """
    if not line.startswith("data:"):
        return ""
    data = json.loads(line[5:])
    kind = data["type"]
    if kind == "content_block_delta":
        delta = data["delta"]
        return (delta.get("text") or "") if delta["type"] == "text_delta" else ""
    if kind == "message_stop":
        return None
    if kind == "error":
        raise RuntimeError(f"stream error: {data['error']}")
    return ""


def callm_client(url: str) -> Any:
    import callm

    return callm.Client(
        providers={"anthropic": {"base_url": url, "api_key": API_KEY}},
        max_retries=0,
        timeout=TIMEOUT,
        env_file=None,
        **BARE,
    )


def sdk_client(url: str) -> Any:
    """The official SDK's client, kept from printing anything into the table."""
    import anthropic

    # Its only console output would be a DeprecationWarning for a retired model name (not
    # ours) or a logged warning when OpenTelemetry propagators fail to load.
    warnings.filterwarnings("ignore", message=r"The model .* is deprecated")
    logging.getLogger("anthropic").setLevel(logging.ERROR)
    return anthropic.Anthropic(base_url=url, api_key=API_KEY, max_retries=0, timeout=TIMEOUT)


# -- 5a. sequential non-streaming requests ------------------------------------------------


def _callm_sync(url: str) -> tuple[Call, Close]:
    client = callm_client(url)

    def call() -> int:
        return _checked(client.complete(CALLM_MODEL, SHORT_PROMPT, max_tokens=MAX_TOKENS).text)

    return call, client.close


def _httpx2_sync(url: str) -> tuple[Call, Close]:
    import httpx2

    client = httpx2.Client(timeout=TIMEOUT)
    endpoint, hdrs = f"{url}/v1/messages", headers()

    def call() -> int:
        response = client.post(
            endpoint, content=request_body(SHORT_PROMPT, MAX_TOKENS), headers=hdrs
        )
        response.raise_for_status()
        return _checked(reply_text(response.content))

    return call, client.close


def _urllib3_sync(url: str) -> tuple[Call, Close]:
    import urllib3

    pool = urllib3.PoolManager(timeout=urllib3.Timeout(TIMEOUT), retries=False)
    endpoint, hdrs = f"{url}/v1/messages", headers()

    def call() -> int:
        response = pool.request(
            "POST", endpoint, body=request_body(SHORT_PROMPT, MAX_TOKENS), headers=hdrs
        )
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
        return _checked(reply_text(response.data))

    return call, pool.clear


def _sdk_sync(url: str) -> tuple[Call, Close]:
    client = sdk_client(url)

    def call() -> int:
        message = client.messages.create(
            model=MODEL,
            max_tokens=MAX_TOKENS,
            messages=[{"role": "user", "content": SHORT_PROMPT}],
        )
        return _checked("".join(b.text for b in message.content if b.type == "text"))

    return call, client.close


# -- 5b. streamed text chunks -------------------------------------------------------------


def _callm_stream(url: str) -> tuple[Call, Close]:
    client = callm_client(url)

    def call() -> int:
        chunks = 0
        with client.stream(CALLM_MODEL, LONG_PROMPT, max_tokens=STREAM_MAX_TOKENS) as stream:
            for event in stream:
                if event.type == "text" and event.text:
                    chunks += 1
        return chunks

    return call, client.close


def _httpx2_stream(url: str) -> tuple[Call, Close]:
    import httpx2

    client = httpx2.Client(timeout=TIMEOUT)
    endpoint, hdrs = f"{url}/v1/messages", headers()

    def call() -> int:
        chunks = 0
        body = request_body(LONG_PROMPT, STREAM_MAX_TOKENS, stream=True)
        with client.stream("POST", endpoint, content=body, headers=hdrs) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                text = sse_text(line)
                if text is None:
                    break
                if text:
                    chunks += 1
        return chunks

    return call, client.close


def _sdk_stream(url: str) -> tuple[Call, Close]:
    client = sdk_client(url)

    def call() -> int:
        chunks = 0
        stream = client.messages.create(
            model=MODEL,
            max_tokens=STREAM_MAX_TOKENS,
            messages=[{"role": "user", "content": LONG_PROMPT}],
            stream=True,
        )
        with stream:
            for event in stream:
                if (
                    event.type == "content_block_delta"
                    and event.delta.type == "text_delta"
                    and event.delta.text
                ):
                    chunks += 1
        return chunks

    return call, client.close


SYNC_FACTORIES: dict[str, Factory] = {
    "callm": _callm_sync,
    "httpx2": _httpx2_sync,
    "urllib3": _urllib3_sync,
    SDK: _sdk_sync,
}
STREAM_FACTORIES: dict[str, Factory] = {
    "callm": _callm_stream,
    "httpx2": _httpx2_stream,
    SDK: _sdk_stream,
}
