"""Context windows and output reserves: how many tokens a model's prompt may hold.

Context windows come from genai-prices' maintained model table (``ModelInfo.context_window``),
matched by provider and model exactly as prices are (see ``callm._cost``), and are cached per
model there. genai-prices has no output limits, so the tokens kept free for the reply are the
call's ``max_tokens``, else the conversation's ``max_output_tokens``, else
:data:`DEFAULT_OUTPUT_RESERVE` (never more than a quarter of the window, so a small window
still leaves room for the prompt).

An unknown model has no window (``None``): callm then does not trim at all and lets the
provider say when the prompt is too long, rather than trimming a large-window model to some
guessed small size.
"""

from __future__ import annotations

from typing import Final

DEFAULT_OUTPUT_RESERVE: Final = 4096
# A summary of dropped turns is asked for in at most this many tokens (less in a small window).
DEFAULT_SUMMARY_TOKENS: Final = 1024


def context_window(provider: str, model: str, protocol: str | None = None) -> int | None:
    """The context window of ``provider``'s ``model`` in tokens, or None when unknown.

    ``provider`` is callm's provider name (``"openai"``, ``"gemini"`` …) and ``model`` the
    provider's model name; ``protocol`` helps to match a user-defined provider.
    """
    from .._policies.cost import FREE_PROVIDERS, _lookup

    if provider in FREE_PROVIDERS:  # local models: their window is whatever was loaded
        return None
    info = _lookup(provider, model, protocol)
    window = getattr(info, "context_window", None)
    return window if isinstance(window, int) and window > 0 else None


def output_reserve(window: int, max_tokens: int | None, max_output_tokens: int | None) -> int:
    """Tokens kept free for the reply in a window of ``window`` tokens (see the module doc)."""
    if max_tokens is not None:
        return max_tokens
    if max_output_tokens is not None:
        return max_output_tokens
    return min(DEFAULT_OUTPUT_RESERVE, window // 4)


def summary_tokens(budget: int) -> int:
    """The length a summary is asked to stay within, for a prompt budget of ``budget``."""
    return max(1, min(DEFAULT_SUMMARY_TOKENS, budget // 4))
