"""Embeddings: the request a protocol encodes, and the vectors that come back.

An :class:`EmbedRequest` is one HTTP request's worth of inputs (the engine splits a long
list under the provider's per-request limit and sends the pieces concurrently); the
protocol's ``decode_embed_response`` turns the reply into :class:`Embeddings`, and the
engine joins the pieces back into one, in input order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeAlias, overload

from .types import Usage

if TYPE_CHECKING:
    from decimal import Decimal

EncodingFormat: TypeAlias = Literal["float", "base64"]


@dataclass(frozen=True, slots=True)
class EmbedLimits:
    """How much one embeddings request may carry: ``inputs``, and ``tokens`` summed over
    them (None: no such limit). The engine estimates tokens on the safe side (UTF-8 bytes /
    3 an input), so a request it makes stays under ``tokens``."""

    inputs: int
    tokens: int | None = None


@dataclass(frozen=True, slots=True)
class EmbedRequest:
    """Inputs to embed with one model, in one request. ``model`` is the provider's name.

    ``encoding_format`` is how the vectors travel: ``"base64"`` (little-endian float32,
    several times faster to decode than JSON numbers) or ``"float"``; None lets the
    provider entry decide (see :class:`callm.Quirks`' ``embed_encoding``). ``extra_body``
    is merged into the body as given (Gemini: into each input's entry, where ``taskType``
    and ``title`` live).
    """

    model: str
    inputs: tuple[str, ...]
    dimensions: int | None = None
    encoding_format: EncodingFormat | None = None
    user: str | None = None
    extra_body: Mapping[str, object] = field(default_factory=dict)
    extra_headers: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        # Inputs can be a whole corpus: never dump them into logs or reprs.
        return (
            f"EmbedRequest(model={self.model!r}, inputs=<{len(self.inputs)}>, "
            f"dimensions={self.dimensions!r})"
        )


@dataclass(frozen=True, slots=True)
class Embeddings(Sequence[list[float]]):
    """The vectors of an ``embed()`` call, one per input and in input order.

    It is a sequence of vectors (``len(e)``, ``e[0]``, ``for v in e``). ``usage`` counts the
    input tokens of every request the inputs took (``requests``); ``usage_estimated`` is
    True when the provider reported none (Gemini's API) and callm estimated them — then
    ``cost`` is an estimate too. ``cost`` is None when the model's price is unknown.
    """

    vectors: list[list[float]]
    model: str
    provider: str
    usage: Usage = field(default_factory=Usage)
    cost: Decimal | None = None
    usage_estimated: bool = False
    request_id: str | None = None
    latency_s: float | None = None
    # How many HTTP requests the inputs were split into (each under the provider's limit).
    requests: int = 1
    # Every "provider/model" tried, in order; the last one answered.
    tried: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (
            f"Embeddings(model={self.model!r}, provider={self.provider!r}, "
            f"vectors=<{len(self.vectors)} x {self.dimensions}>, usage={self.usage!r}, "
            f"cost={self.cost!r})"
        )

    @property
    def dimensions(self) -> int:
        """The length of each vector (0 when there are none)."""
        return len(self.vectors[0]) if self.vectors else 0

    def __len__(self) -> int:
        return len(self.vectors)

    @overload
    def __getitem__(self, index: int) -> list[float]: ...
    @overload
    def __getitem__(self, index: slice) -> list[list[float]]: ...
    def __getitem__(self, index: int | slice) -> list[float] | list[list[float]]:
        return self.vectors[index]

    def __iter__(self) -> Iterator[list[float]]:
        return iter(self.vectors)
