"""What the test thread and the server thread share: the script queue and the records."""

from __future__ import annotations

import itertools
import os
import threading
from collections import deque
from collections.abc import Iterable
from types import TracebackType
from typing import Generic, TypeVar

from ._script import Fault, RecordedRequest, Reply


class OAuthState:
    """The fake Google token endpoint's memory: trusted keys, the tokens it issued.

    Not locked on its own: :class:`ServerState` holds it and takes its lock around every use.
    """

    def __init__(self) -> None:
        self.public_keys: dict[str, str] = {}  # service-account private_key_id -> public PEM
        self.issued: dict[str, float] = {}  # access token -> when it expires (epoch seconds)
        self.lifetime = 3600  # seconds, as Google issues them
        self.token_requests = 0
        self.delay = 0.0  # seconds the endpoint takes to answer (a slow token server)

    @property
    def enforced(self) -> bool:
        """Whether Vertex requests must bring a token this endpoint issued."""
        return bool(self.public_keys or self.issued)


class ServerState:
    """The queue of scripted replies and faults, the request log and fixed settings.

    Every method takes the lock, so a test may queue or inspect while the server thread
    is serving.
    """

    def __init__(
        self,
        *,
        api_key: str | None,
        models: Iterable[str],
        batch_delay: float = 1.0,
        record: bool = True,
    ) -> None:
        self.api_key = api_key
        self._recording = record
        self.models = tuple(models)
        # Seconds a submitted provider batch takes to end (see _batch_fake).
        self.batch_delay = batch_delay
        self._lock = threading.Lock()
        self._queue: deque[Reply | Fault] = deque()
        self._records: list[RecordedRequest] = []
        # AWS access key id -> secret access key: Bedrock signatures made with these are
        # recomputed and compared (see _aws_wire.check_auth).
        self._aws_keys: dict[str, str] = {}
        self._oauth = OAuthState()
        # A per-server prefix plus a counter: unique ids without a uuid per request.
        self._id_prefix = os.urandom(4).hex()
        self._ids = itertools.count(1)

    def push(self, items: Iterable[Reply | Fault]) -> None:
        with self._lock:
            self._queue.extend(items)

    def pop(self) -> Reply | Fault | None:
        """The next scripted item, or None when the offline model should answer."""
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def pop_fault(self) -> Fault | None:
        """The next scripted item if it is a Fault (embeddings answer no scripted Reply)."""
        with self._lock:
            if self._queue and isinstance(self._queue[0], Fault):
                item = self._queue.popleft()
                assert isinstance(item, Fault)
                return item
            return None

    def record(self, request: RecordedRequest) -> None:
        if not self._recording:
            return
        with self._lock:
            self._records.append(request)

    def records(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._records)

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._records.clear()

    def accept_aws_key(self, access_key_id: str, secret_access_key: str) -> None:
        with self._lock:
            self._aws_keys[access_key_id] = secret_access_key

    def aws_keys(self) -> dict[str, str]:
        with self._lock:
            return dict(self._aws_keys)

    def oauth(self) -> _Locked[OAuthState]:
        """The token endpoint's state, held under the lock: ``with state.oauth() as o:``."""
        return _Locked(self._lock, self._oauth)

    def new_uuid(self) -> str:
        """A request id shaped like AWS's (a UUID), unique within this server."""
        import uuid

        raw = bytes.fromhex(self._id_prefix) + next(self._ids).to_bytes(12, "big")
        return str(uuid.UUID(bytes=raw))

    def new_id(self) -> str:
        """A short id, unique within this server (``next`` on a count is atomic in CPython)."""
        return f"{self._id_prefix}{next(self._ids):08x}"


T = TypeVar("T")


class _Locked(Generic[T]):
    """A value used only while its lock is held."""

    def __init__(self, lock: threading.Lock, value: T) -> None:
        self._lock = lock
        self._value = value

    def __enter__(self) -> T:
        self._lock.acquire()
        return self._value

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock.release()
