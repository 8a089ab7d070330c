"""callm's offline embedding model: deterministic feature hashing, no network, no weights.

Each lower-cased word of a text, and each pair of neighbouring words, is hashed to a
position and a sign; the counts are scaled to unit length. Texts that share words point the
same way (their dot product is their cosine similarity), the same text always gets the same
vector, and nothing is learned: good for tests, demos and pipelines run offline, not for
judging meaning.
"""

from __future__ import annotations

import math
from hashlib import blake2b
from itertools import pairwise

__all__ = ["DEFAULT_DIMENSIONS", "hash_embedding", "input_tokens"]

DEFAULT_DIMENSIONS = 256


def hash_embedding(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """The offline model's unit vector of ``text`` (``dimensions`` long)."""
    words = text.lower().split()
    features = words + [f"{a} {b}" for a, b in pairwise(words)]
    vector = [0.0] * dimensions
    for feature in features or [""]:
        code = int.from_bytes(blake2b(feature.encode(), digest_size=8).digest(), "little")
        vector[code % dimensions] += 1.0 if code >> 63 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:  # features that cancelled out: still a unit vector, still deterministic
        vector[0], norm = 1.0, 1.0
    return [v / norm for v in vector]


def input_tokens(text: str) -> int:
    """What the offline model counts as a text's tokens: its words (at least 1)."""
    return max(len(text.split()), 1)
