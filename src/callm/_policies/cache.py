"""The opt-in response cache: exact-match, keyed by the normalised request, with a TTL.

Only successful replies are stored (errors never are). A hit is marked ``cached=True``
and costs nothing. Entries live in memory, or in the SQLite store to outlive the process.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Literal

from .._core.http import HttpRequest
from .._core.types import Response, Usage
from .base import Attempt, Policy, StateKey

if TYPE_CHECKING:
    from .._store import Store


@dataclass(frozen=True, slots=True)
class ResponseCache:
    """Cache replies for ``ttl`` seconds (None: forever) in "memory" or "sqlite"."""

    ttl: float | None = 3600.0
    backend: Literal["memory", "sqlite"] = "memory"
    max_entries: int = 1024  # memory backend: least recently used entries go first


def cache_key(provider: str, request: HttpRequest) -> str:
    """The key of a request: its provider, URL and JSON body (callm encodes it canonically)."""
    import hashlib

    digest = hashlib.sha256()
    for piece in (provider.encode(), request.url.encode(), request.body or b""):
        digest.update(len(piece).to_bytes(8, "big"))
        digest.update(piece)
    return digest.hexdigest()


class CacheStore:
    """Where a client's cached replies live; thread-safe."""

    def __init__(self, config: ResponseCache, store: Store | None = None) -> None:
        self.config = config
        self._store = store  # for the sqlite backend
        self._memory: OrderedDict[str, tuple[float | None, Response]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Response | None:
        if self._store is not None:
            blob = self._store.cache_get(key)
            return None if blob is None else response_from_json(blob)
        with self._lock:
            entry = self._memory.get(key)
            if entry is None:
                return None
            expires, response = entry
            if expires is not None and time.monotonic() > expires:
                del self._memory[key]
                return None
            self._memory.move_to_end(key)
            return response

    def put(self, key: str, response: Response) -> None:
        ttl = self.config.ttl
        if self._store is not None:
            self._store.cache_put(key, response_to_json(response), ttl)
            return
        with self._lock:
            expires = None if ttl is None else time.monotonic() + ttl
            self._memory[key] = (expires, response)
            self._memory.move_to_end(key)
            while len(self._memory) > self.config.max_entries:
                self._memory.popitem(last=False)


_KEY: StateKey[str] = StateKey("cache key")


class CachePolicy(Policy):
    """Answers a call the cache holds a reply to; stores every new reply.

    A call passed ``response_cache=False`` neither reads nor fills it. Streamed or not, the
    same question has the same cached answer: the key is made from the request as it would
    be sent without streaming.
    """

    def __init__(self, cache: CacheStore) -> None:
        self.cache = cache

    def __repr__(self) -> str:
        return f"CachePolicy({self.cache.config!r})"

    def prepare(self, attempt: Attempt) -> None:
        if not attempt.params.get("response_cache", True):
            return
        http = attempt.http
        assert http is not None
        endpoint, request = attempt.endpoint, attempt.info.request
        if request.stream:
            from ..protocols import protocol_for

            plain = replace(request, stream=False)
            http = protocol_for(endpoint.protocol).encode(endpoint, plain)
        attempt.put(_KEY, cache_key(endpoint.provider, http))

    def answer(self, attempt: Attempt) -> Response | None:
        key = attempt.get(_KEY)
        if key is None:
            return None
        found = self.cache.get(key)
        return None if found is None else hit(found, attempt.info.model)

    def succeeded(
        self, attempt: Attempt, response: Response, headers: Mapping[str, str]
    ) -> Response:
        key = attempt.get(_KEY)
        if key is not None and not attempt.cached:
            self.cache.put(key, response)
        return response


def hit(response: Response, model: str) -> Response:
    """A cached reply as the caller sees it: marked, free, instant."""
    from decimal import Decimal

    return replace(
        response, cached=True, cost=Decimal(0), latency_s=0.0, ttft_s=0.0, tried=(model,)
    )


def response_to_json(response: Response) -> bytes:
    from .._store._record import part_json  # the store's own form, loaded with the store

    data = {
        "id": response.id,
        "model": response.model,
        "provider": response.provider,
        "content": [part_json(p) for p in response.content],
        "finish_reason": response.finish_reason,
        "usage": {f.name: getattr(response.usage, f.name) for f in fields(Usage)},
        "native_finish_reason": response.native_finish_reason,
        "request_id": response.request_id,
        "raw": response.raw,
    }
    return json.dumps(data, default=str).encode()


def response_from_json(blob: bytes) -> Response:
    from .._store._record import part_from_json

    data = json.loads(blob)
    content = tuple(part_from_json(p) for p in data.pop("content"))
    return Response(content=content, usage=Usage(**data.pop("usage")), **data)
