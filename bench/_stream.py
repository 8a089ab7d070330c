"""Section 2: streamed text chunks per second on a long (~120-chunk) reply."""

from __future__ import annotations

from typing import Any

from _common import (
    API_KEY,
    CALLM_MODEL,
    LITELLM_MODEL,
    LONG_PROMPT,
    MODEL,
    STREAM_MAX_TOKENS,
    TIMEOUT,
    headers,
    request_body,
    sse_chunk_text,
)
from _rounds import Call, Close, Factory
from _sync import callm_client, load_litellm


def _callm(url: str) -> tuple[Call, Close]:
    client = callm_client(url)
    return _callm_call(client), client.close


def _callm_httpx2(url: str) -> tuple[Call, Close]:
    import httpx2

    http = httpx2.Client(timeout=TIMEOUT)
    client = callm_client(url, http)

    def close() -> None:
        client.close()
        http.close()

    return _callm_call(client), close


def _callm_call(client: Any) -> Call:
    def call() -> int:
        chunks = 0
        with client.stream(CALLM_MODEL, LONG_PROMPT, max_tokens=STREAM_MAX_TOKENS) as stream:
            for event in stream:
                if event.type == "text" and event.text:
                    chunks += 1
        return chunks

    return call


def _httpx2(url: str) -> tuple[Call, Close]:
    import httpx2

    client = httpx2.Client(timeout=TIMEOUT)
    endpoint, hdrs = f"{url}/v1/chat/completions", headers()

    def call() -> int:
        chunks = 0
        body = request_body(LONG_PROMPT, STREAM_MAX_TOKENS, stream=True)
        with client.stream("POST", endpoint, content=body, headers=hdrs) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                text = sse_chunk_text(line)
                if text is None:
                    break
                if text:
                    chunks += 1
        return chunks

    return call, client.close


def _openai(url: str) -> tuple[Call, Close]:
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0, timeout=TIMEOUT)

    def call() -> int:
        chunks = 0
        stream = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": LONG_PROMPT}],
            max_tokens=STREAM_MAX_TOKENS,
            stream=True,
            stream_options={"include_usage": True},
        )
        with stream:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    chunks += 1
        return chunks

    return call, client.close


def _litellm(url: str) -> tuple[Call, Close]:
    litellm = load_litellm()
    base = f"{url}/v1"

    def call() -> int:
        chunks = 0
        stream = litellm.completion(
            model=LITELLM_MODEL,
            messages=[{"role": "user", "content": LONG_PROMPT}],
            max_tokens=STREAM_MAX_TOKENS,
            api_base=base,
            api_key=API_KEY,
            timeout=TIMEOUT,
            num_retries=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                chunks += 1
        return chunks

    return call, lambda: None


FACTORIES: dict[str, Factory] = {
    "callm": _callm,
    "callm-httpx2": _callm_httpx2,
    "httpx2": _httpx2,
    "openai": _openai,
    "litellm": _litellm,
}
