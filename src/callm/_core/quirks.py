"""How one provider's server departs from its protocol's reference API, as typed fields.

Every provider entry carries a :class:`Quirks` value: the built-in entries set theirs (the
``openrouter`` entry sends reasoning back as ``reasoning_details``, ``deepseek`` as
``reasoning_content`` …) and an entry of your own starts from the defaults — what nearly
every OpenAI-compatible server takes — and changes what its server needs, in code::

    callm.Client(providers={"mine": {"base_url": "…", "quirks": {"stream_options": False}}})

or in ``config.toml``::

    [providers.mine]
    base_url = "http://localhost:8000/v1"
    quirks = { max_tokens_field = "max_completion_tokens" }

The older spelling, a list of flag names (``["legacy_max_tokens", "prompt_cache_key"]``),
is still read: each name sets the field it stands for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, get_args

from .request_errors import ConfigurationError

MaxTokensField = Literal["max_tokens", "max_completion_tokens"]
SeedField = Literal["seed", "random_seed"]
ReasoningBack = Literal["none", "reasoning_content", "reasoning_details"]
EmbedEncoding = Literal["base64", "float"]


@dataclass(frozen=True, slots=True)
class Quirks:
    """One provider's departures from its protocol, each a typed field.

    OpenAI-compatible servers (the ``openai_chat`` protocol):

    - ``max_tokens_field``: where ``max_tokens`` goes. ``"max_tokens"`` is what nearly every
      compatible server takes; OpenAI's own API (and Azure, Groq, xAI) want
      ``"max_completion_tokens"``.
    - ``seed_field``: ``"random_seed"`` for Mistral.
    - ``short_tool_ids``: tool-call ids must be 9 alphanumerics (Mistral).
    - ``stream_options``: the server takes ``stream_options.include_usage`` (Mistral does not).
    - ``prompt_cache_key``: ``cache=`` sends a ``prompt_cache_key`` (OpenAI, Azure).
    - ``cache_control``: ``cache=`` and ``Message(cache=True)`` put Anthropic-style
      ``cache_control`` marks on text content parts (OpenRouter passes them to Anthropic
      and Gemini models).
    - ``document_urls``: a document given by URL goes as a ``file`` part (OpenRouter fetches
      it); without it only inline documents can be sent.
    - ``reasoning_back``: how earlier reasoning goes back to the server.
      ``"reasoning_content"`` (DeepSeek's thinking mode): on each assistant turn that made
      tool calls, its reasoning text as ``reasoning_content`` — DeepSeek answers 400
      without it. ``"reasoning_details"`` (OpenRouter): on every assistant turn, the
      ``reasoning_details`` it sent, verbatim (signatures and encrypted reasoning
      included). ``"none"``: reasoning stays out of the request.

    Embeddings (any protocol that has them):

    - ``embed_batch_size``: the most inputs one embeddings request may carry; longer lists
      are split and sent concurrently. None: the protocol's own limit (OpenAI 2048,
      Gemini's ``batchEmbedContents`` 100).
    - ``embed_encoding``: how OpenAI-compatible servers are asked to send vectors.
      ``"base64"`` (what the official OpenAI SDK asks for, so compatible servers take it;
      several times faster to decode) or ``"float"`` for a server that refuses it.

    Google's Vertex AI (the ``vertex`` entry):

    - ``vertex``: the protocol at Vertex AI's paths. Anthropic's Messages: the model in the
      URL (``/models/{model}:rawPredict``, ``:streamRawPredict``), ``anthropic_version:
      vertex-2023-10-16`` in the body, no ``model`` field. Gemini's embeddings:
      ``:predict`` with ``instances`` instead of ``batchEmbedContents``.

    Gemini (the ``gemini`` protocol):

    - ``openapi_schema``: tool and output schemas go in Google's OpenAPI subset instead of
      JSON Schema (older models and some gateways).
    """

    max_tokens_field: MaxTokensField = "max_tokens"
    seed_field: SeedField = "seed"
    short_tool_ids: bool = False
    stream_options: bool = True
    prompt_cache_key: bool = False
    cache_control: bool = False
    document_urls: bool = False
    reasoning_back: ReasoningBack = "none"
    openapi_schema: bool = False
    embed_batch_size: int | None = None
    embed_encoding: EmbedEncoding = "base64"
    vertex: bool = False

    @classmethod
    def of(cls, value: Quirks | Mapping[str, Any] | Iterable[str], base: Quirks) -> Quirks:
        """Quirks from a config value: a Quirks, a mapping of fields (over ``base``), or the
        older list of flag names (over the defaults)."""
        if isinstance(value, Quirks):
            return value
        if isinstance(value, Mapping):
            return _checked(replace(base, **_known_fields(value)))
        if isinstance(value, str):
            value = [value]
        return _from_flags(value)


DEFAULT = Quirks()  # what an entry of your own starts from
_FIELDS = {f.name: f for f in fields(Quirks)}
_CHOICES: Mapping[str, tuple[Any, ...]] = {
    "max_tokens_field": get_args(MaxTokensField),
    "seed_field": get_args(SeedField),
    "reasoning_back": get_args(ReasoningBack),
    "embed_encoding": get_args(EmbedEncoding),
}
# The older flag names, and the field each one sets.
FLAGS: Mapping[str, tuple[str, Any]] = {
    "legacy_max_tokens": ("max_tokens_field", "max_tokens"),
    "random_seed": ("seed_field", "random_seed"),
    "short_tool_ids": ("short_tool_ids", True),
    "no_stream_options": ("stream_options", False),
    "prompt_cache_key": ("prompt_cache_key", True),
    "gemini_openapi_schema": ("openapi_schema", True),
}


def _known_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ConfigurationError(
            f"unknown quirk(s) {', '.join(unknown)}; known: {', '.join(_FIELDS)}"
        )
    return dict(values)


def _checked(quirks: Quirks) -> Quirks:
    for name, choices in _CHOICES.items():
        value = getattr(quirks, name)
        if value not in choices:
            raise ConfigurationError(
                f"quirk {name} = {value!r} is not one of {', '.join(map(repr, choices))}"
            )
    for name, spec in _FIELDS.items():
        if spec.type == "bool" and not isinstance(getattr(quirks, name), bool):
            raise ConfigurationError(f"quirk {name} takes true or false")
    size = quirks.embed_batch_size
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ConfigurationError("quirk embed_batch_size takes a whole number (1 or more)")
    return quirks


def _from_flags(names: Iterable[str]) -> Quirks:
    changes: dict[str, Any] = {}
    for name in names:
        flag = FLAGS.get(name)
        if flag is None:
            raise ConfigurationError(
                f"unknown quirk flag {name!r}; known: {', '.join(FLAGS)} — or give the "
                f"fields themselves: {', '.join(_FIELDS)}"
            )
        changes[flag[0]] = flag[1]
    return Quirks(**changes)
