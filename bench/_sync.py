"""Section 1: sequential non-streaming requests per second, one client at a time."""

from __future__ import annotations

from typing import Any

from _common import (
    API_KEY,
    BARE,
    CALLM_MODEL,
    LITELLM_MODEL,
    MAX_TOKENS,
    MODEL,
    SHORT_PROMPT,
    TIMEOUT,
    configure_litellm_env,
    headers,
    reply_text,
    request_body,
)
from _rounds import Call, Close, Factory

_SIGN = "[offline]"


def _checked(text: str | None) -> int:
    if not text or not text.startswith(_SIGN):
        raise RuntimeError(f"unexpected reply text: {text!r}")
    return 1


def callm_client(url: str, http_client: Any = None, **policies: Any) -> Any:
    """callm's client on the fake server: the bare client (``BARE``: no call log, no
    tracing, no rate limiter) unless ``policies`` say otherwise."""
    import callm

    return callm.Client(
        providers={"fake": {"base_url": f"{url}/v1", "api_key": API_KEY}},
        max_retries=0,
        timeout=TIMEOUT,
        env_file=None,
        http_client=http_client,
        **{**BARE, **policies},
    )


def _callm(url: str) -> tuple[Call, Close]:
    client = callm_client(url)

    def call() -> int:
        return _checked(client.complete(CALLM_MODEL, SHORT_PROMPT, max_tokens=MAX_TOKENS).text)

    return call, client.close


def _callm_httpx2(url: str) -> tuple[Call, Close]:
    import httpx2

    http = httpx2.Client(timeout=TIMEOUT)
    client = callm_client(url, http)

    def call() -> int:
        return _checked(client.complete(CALLM_MODEL, SHORT_PROMPT, max_tokens=MAX_TOKENS).text)

    def close() -> None:
        client.close()
        http.close()

    return call, close


def _httpx2(url: str) -> tuple[Call, Close]:
    import httpx2

    client = httpx2.Client(timeout=TIMEOUT)
    endpoint, hdrs = f"{url}/v1/chat/completions", headers()

    def call() -> int:
        response = client.post(
            endpoint, content=request_body(SHORT_PROMPT, MAX_TOKENS), headers=hdrs
        )
        response.raise_for_status()
        return _checked(reply_text(response.content))

    return call, client.close


def _urllib3(url: str) -> tuple[Call, Close]:
    import urllib3

    pool = urllib3.PoolManager(timeout=urllib3.Timeout(TIMEOUT), retries=False)
    endpoint, hdrs = f"{url}/v1/chat/completions", headers()

    def call() -> int:
        response = pool.request(
            "POST", endpoint, body=request_body(SHORT_PROMPT, MAX_TOKENS), headers=hdrs
        )
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
        return _checked(reply_text(response.data))

    return call, pool.clear


def _openai(url: str) -> tuple[Call, Close]:
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0, timeout=TIMEOUT)

    def call() -> int:
        reply = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": SHORT_PROMPT}],
            max_tokens=MAX_TOKENS,
        )
        return _checked(reply.choices[0].message.content)

    return call, client.close


def load_litellm() -> Any:
    """Import LiteLLM with everything that could reach the network turned off."""
    configure_litellm_env()
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    litellm.set_verbose = False
    return litellm


def _litellm(url: str) -> tuple[Call, Close]:
    litellm = load_litellm()
    base = f"{url}/v1"

    def call() -> int:
        reply = litellm.completion(
            model=LITELLM_MODEL,
            messages=[{"role": "user", "content": SHORT_PROMPT}],
            max_tokens=MAX_TOKENS,
            api_base=base,
            api_key=API_KEY,
            timeout=TIMEOUT,
            num_retries=0,
        )
        return _checked(reply.choices[0].message.content)

    return call, lambda: None


FACTORIES: dict[str, Factory] = {
    "callm": _callm,
    "callm-httpx2": _callm_httpx2,
    "httpx2": _httpx2,
    "urllib3": _urllib3,
    "openai": _openai,
    "litellm": _litellm,
}
