"""Streams: the shared bytes → events pipeline, and the sync and async iterators over it."""

from __future__ import annotations

import time
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Generator,
    Iterator,
    Mapping,
)
from dataclasses import replace
from types import AsyncGeneratorType, GeneratorType, TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from .._core.errors import (
    APIConnectionError,
    APIError,
    APIResponseError,
    APITimeoutError,
    StreamInterruptedError,
)
from .._core.timeouts import Timeout
from .._core.types import (
    FinishEvent,
    PartialOutput,
    ReasoningDelta,
    RefusalDelta,
    Response,
    StreamEvent,
    TextDelta,
    ToolCallEvent,
    UsageEvent,
)
from ..protocols._shared.errors import is_unreadable, readable
from ..protocols._shared.sse import SSEDecoder, SSEEvent

if TYPE_CHECKING:
    from .._transport import AsyncStreamBody, StreamBody
    from ..protocols import Framing, StreamDecoder

_clock = time.perf_counter
_HEAD_KEPT = 512


def _is_event_stream(content_type: str) -> bool:
    """SSE (text/event-stream) or another framing of events (AWS's eventstream)."""
    kind = content_type.lower()
    return "event-stream" in kind or "eventstream" in kind


class OutputParser(Protocol):
    """Structured output read as a stream goes (``callm._features.partial.PartialParser``)."""

    def events(self, events: Iterator[StreamEvent]) -> Iterator[StreamEvent]: ...

    def aevents(self, events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]: ...

    def finish(self, response: Response) -> Response: ...


class StreamState:
    """Pure stream logic shared by both clients: SSE framing, decoding, timing, deadlines.

    An error the provider reports after some events of the same network chunk is held in
    :attr:`error` until those events are delivered, so what the caller sees never depends
    on how the bytes happened to be cut into chunks.
    """

    __slots__ = (
        "_content_type",
        "_deadline",
        "_head",
        "_idle",
        "_last",
        "_reported",
        "_sse",
        "_started",
        "_total",
        "decoder",
        "error",
        "on_abandon",
        "on_fail",
        "on_finish",
        "ttft",
    )

    def __init__(
        self,
        decoder: StreamDecoder,
        timeout: Timeout,
        started: float,
        framing: Framing | None = None,
        content_type: str = "",
    ) -> None:
        self.decoder = decoder
        # What came before the first event, to say what a body without events was.
        self._content_type = content_type
        self._head = b""
        self._sse: Framing = framing if framing is not None else SSEDecoder()
        self._started = started
        self._last = started
        self._total = timeout.total
        self._deadline = started + timeout.total if timeout.total is not None else None
        self._idle = timeout.idle
        self.ttft: float | None = None
        self.error: APIError | None = None
        # The client's policies (cost, log, tracing …) hear how the stream ended, once.
        self.on_finish: Callable[[Response], Response] | None = None
        self.on_fail: Callable[[BaseException], None] | None = None
        self.on_abandon: Callable[[Response], None] | None = None
        self._reported = False

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        """Events completed by one network chunk; raises on an in-stream error or a timeout."""
        if self.ttft is None and len(self._head) < _HEAD_KEPT:
            self._head += chunk[: _HEAD_KEPT - len(self._head)]
        events = self._decode(self._sse.feed(chunk))
        now = _clock()
        if events:
            if self.ttft is None:
                self.ttft = now - self._started
            self._last = now
        elif self._idle is not None and now - self._last > self._idle:
            raise self.fail(APITimeoutError(f"no stream event for {self._idle:g} s (idle timeout)"))
        if self._deadline is not None and now > self._deadline:
            raise self.fail(
                APITimeoutError(f"the stream exceeded its total timeout of {self._total:g} s")
            )
        return events

    def _decode(self, sse_events: list[SSEEvent]) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        decode = self.decoder.feed
        for sse in sse_events:
            try:
                events += decode(sse)
            except APIError as exc:
                if not events:
                    raise
                self.error = exc  # raised once the events before it are delivered
                break
        return events

    def raise_held(self) -> None:
        """Raise the error held back while the events before it were delivered."""
        if self.error is not None:
            raise self.error

    def end(self) -> list[StreamEvent]:
        """The body ended: decode the event still pending, then check the reply finished.

        A last line cut off without its line ending that does not decode is part of an
        interrupted stream, not a malformed event.
        """
        cut_line = bool(self._sse.pending)
        try:
            events = self._decode(self._sse.close())
        except APIResponseError as exc:
            if not (cut_line and is_unreadable(exc)):
                raise
            events = []
        if self.error is None and not self.decoder.finished:
            if self.ttft is None and not _is_event_stream(self._content_type):
                raise self.fail(self._not_a_stream())
            raise self.fail(
                StreamInterruptedError(
                    "the stream ended before the provider finished its reply; the part that "
                    "arrived is in .partial"
                )
            )
        return events

    def _not_a_stream(self) -> APIResponseError:
        """A stream request answered with a page or a whole JSON body: say what came."""
        text = self._head.decode("utf-8", "replace")
        what = readable(text)
        if what == text:  # not a page: its type and its first words
            what = f"{self._content_type or 'a body'} ({text[:200]!r})"
        return APIResponseError(
            f"the provider answered the stream request with {what} instead of an event stream"
        )

    def fail(self, error: APIError) -> APIError:
        """Attach what has arrived so far to an error, so nothing received is lost."""
        if error.partial is None:
            error.partial = self.response()
        if error.provider is None:
            error.provider = self.decoder.endpoint.provider
        if isinstance(error, APIConnectionError) and not isinstance(
            error, APITimeoutError | StreamInterruptedError
        ):
            interrupted = StreamInterruptedError(
                f"the stream broke off: {error.message}",
                provider=error.provider,
                request_id=self.decoder.request_id,
                partial=error.partial,
            )
            interrupted.__cause__ = error
            return interrupted
        return error

    def response(self) -> Response:
        return replace(
            self.decoder.response(), latency_s=_clock() - self._started, ttft_s=self.ttft
        )

    def finished_response(self) -> Response:
        """The complete Response, passed through the client's policies."""
        response = self.response()
        if self.on_finish is not None and not self._reported:
            self._reported = True
            response = self.on_finish(response)
        return response

    def report_failure(self, error: BaseException) -> None:
        if self.on_fail is not None and not self._reported:
            self._reported = True
            self.on_fail(error)

    def report_abandoned(self) -> None:
        """The caller closed the stream before it finished."""
        if self.on_abandon is not None and not self._reported:
            self._reported = True
            self.on_abandon(self.response())


class Stream:
    """A streamed reply: iterate for events; ``.response`` is the accumulated Response.

    Use it as a context manager so the connection is closed when you stop early.
    """

    def __init__(self, body: StreamBody, state: StreamState) -> None:
        self._body = body
        self._state = state
        self._chunks = body.chunks()
        self._head: list[StreamEvent] = []  # decoded by start(), not yet delivered
        self._ended = False
        self._iterator = self._events()
        self._response: Response | None = None
        self._closed = False

    def start(self) -> Stream:
        """Read up to the first event, so an error sent before any content surfaces here,
        where retries and fallbacks treat it as they treat an HTTP error."""
        state = self._state
        try:
            for chunk in self._chunks:
                self._head = state.feed(chunk)
                if self._head or state.error is not None:
                    return self
            self._head, self._ended = state.end(), True
        except APIError as exc:
            self._body.close()
            self._closed = True
            raise state.fail(exc) from exc.__cause__
        return self

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[StreamEvent]:
        return self._iterator

    def __next__(self) -> StreamEvent:
        return next(self._iterator)

    def _events(self) -> Iterator[StreamEvent]:
        state = self._state
        try:
            yield from self._head
            state.raise_held()
            if not self._ended:
                for chunk in self._chunks:
                    yield from state.feed(chunk)
                    state.raise_held()
                yield from state.end()
                state.raise_held()
            self._response = state.finished_response()
        except APIError as exc:
            error = state.fail(exc)
            state.report_failure(error)
            raise error from exc.__cause__
        finally:
            self.close()

    def _expect_output(self, parser: OutputParser) -> None:
        """Structured output: PartialOutput events as the JSON grows, ``parsed`` at the end."""
        self._iterator = self._with_output(self._iterator, parser)

    def _with_output(
        self, events: Iterator[StreamEvent], parser: OutputParser
    ) -> Iterator[StreamEvent]:
        yield from parser.events(events)
        self._response = response = parser.finish(self._finished())
        if not response.tool_calls:
            yield PartialOutput(response.parsed, complete=True)

    def _finished(self) -> Response:
        """The Response of a stream read to its end."""
        return self._response or self._state.response()

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers (rate-limit counters and such)."""
        return self._body.headers

    def watch(
        self,
        on_finish: Callable[[Response], Response],
        on_fail: Callable[[BaseException], None],
        on_abandon: Callable[[Response], None],
    ) -> None:
        """Callbacks for how the stream ends: finished, failed or closed early (one of them)."""
        state = self._state
        state.on_finish, state.on_fail, state.on_abandon = on_finish, on_fail, on_abandon

    def _then(self, step: Callable[[Response], Response]) -> None:
        """Pass the finished Response through ``step`` too, after the client's policies.

        Only a stream that completes reaches ``step``: one that fails or is closed early
        does not (a conversation commits its turn this way).
        """
        _chain(self._state, step)

    @property
    def text_stream(self) -> Iterator[str]:
        """Only the text fragments, as they arrive."""
        return (ev.text for ev in self if ev.type == "text")

    @property
    def response(self) -> Response:
        """The whole Response: reads the rest of the stream first if it is still open."""
        if self._response is None:
            if not self._closed:
                for _ in self._iterator:
                    pass
            if self._response is None:
                return self._state.response()
        return self._response

    def close(self) -> None:
        """Stop reading and drop the connection; iterating afterwards yields nothing more."""
        if not self._closed:
            self._closed = True
            self._body.close()
            self._state.report_abandoned()
            iterator = self._iterator
            if isinstance(iterator, GeneratorType) and not iterator.gi_running:
                iterator.close()


class AsyncStream:
    """The async twin of :class:`Stream`: ``async for`` events, ``await s.get_response()``."""

    def __init__(self, body: AsyncStreamBody, state: StreamState) -> None:
        self._body = body
        self._state = state
        self._chunks = body.chunks()
        self._head: list[StreamEvent] = []  # decoded by start(), not yet delivered
        self._ended = False
        self._iterator = self._events()
        self._response: Response | None = None
        self._closed = False

    async def start(self) -> AsyncStream:
        """Read up to the first event (see :meth:`Stream.start`)."""
        state = self._state
        try:
            async for chunk in self._chunks:
                self._head = state.feed(chunk)
                if self._head or state.error is not None:
                    return self
            self._head, self._ended = state.end(), True
        except APIError as exc:
            await self._body.close()
            self._closed = True
            raise state.fail(exc) from exc.__cause__
        return self

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._iterator

    async def __anext__(self) -> StreamEvent:
        return await anext(self._iterator)

    async def _events(self) -> AsyncIterator[StreamEvent]:
        state = self._state
        try:
            for event in self._head:
                yield event
            state.raise_held()
            if not self._ended:
                async for chunk in self._chunks:
                    for event in state.feed(chunk):
                        yield event
                    state.raise_held()
                for event in state.end():
                    yield event
                state.raise_held()
            self._response = state.finished_response()
        except APIError as exc:
            error = state.fail(exc)
            state.report_failure(error)
            raise error from exc.__cause__
        finally:
            await self.close()

    def _expect_output(self, parser: OutputParser) -> None:
        """Structured output: PartialOutput events as the JSON grows, ``parsed`` at the end."""
        self._iterator = self._with_output(self._iterator, parser)

    async def _with_output(
        self, events: AsyncIterator[StreamEvent], parser: OutputParser
    ) -> AsyncIterator[StreamEvent]:
        async for event in parser.aevents(events):
            yield event
        self._response = response = parser.finish(self._finished())
        if not response.tool_calls:
            yield PartialOutput(response.parsed, complete=True)

    def _finished(self) -> Response:
        """The Response of a stream read to its end."""
        return self._response or self._state.response()

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers (rate-limit counters and such)."""
        return self._body.headers

    def watch(
        self,
        on_finish: Callable[[Response], Response],
        on_fail: Callable[[BaseException], None],
        on_abandon: Callable[[Response], None],
    ) -> None:
        """Callbacks for how the stream ends: finished, failed or closed early (one of them)."""
        state = self._state
        state.on_finish, state.on_fail, state.on_abandon = on_finish, on_fail, on_abandon

    def _then(self, step: Callable[[Response], Response]) -> None:
        """Pass the finished Response through ``step`` too, after the client's policies.

        Only a stream that completes reaches ``step``: one that fails or is closed early
        does not (a conversation commits its turn this way).
        """
        _chain(self._state, step)

    @property
    def text_stream(self) -> AsyncIterator[str]:
        """Only the text fragments, as they arrive: ``async for text in s.text_stream``."""
        return (ev.text async for ev in self if ev.type == "text")

    @property
    def response(self) -> Response:
        """The Response accumulated so far (complete once the stream has been read)."""
        return self._response or self._state.response()

    async def get_response(self) -> Response:
        """The whole Response: reads the rest of the stream first if it is still open."""
        if self._response is None and not self._closed:
            async for _ in self._iterator:
                pass
        return self.response

    async def close(self) -> None:
        """Stop reading and drop the connection; iterating afterwards yields nothing more."""
        if not self._closed:
            self._closed = True
            await self._body.close()
            self._state.report_abandoned()
            iterator = self._iterator
            if isinstance(iterator, AsyncGeneratorType) and not iterator.ag_running:
                await iterator.aclose()


class OpeningStream:
    """An async stream being opened: ``async with`` it, or ``await`` it for the AsyncStream.

    ``async with client.stream(…) as s`` (the habit of httpx and the Anthropic SDK) and
    ``s = await client.stream(…)`` both work, as aiohttp's request objects do.
    """

    __slots__ = ("_opening", "_stream")

    def __init__(self, opening: Coroutine[Any, Any, AsyncStream]) -> None:
        self._opening = opening
        self._stream: AsyncStream | None = None

    def __await__(self) -> Generator[Any, None, AsyncStream]:
        return self._opening.__await__()

    async def __aenter__(self) -> AsyncStream:
        self._stream = await self._opening
        return self._stream

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._stream is not None:
            await self._stream.close()


def _chain(state: StreamState, step: Callable[[Response], Response]) -> None:
    policies = state.on_finish

    def finished(response: Response) -> Response:
        return step(policies(response) if policies is not None else response)

    state.on_finish = finished


def _replayed(response: Response) -> list[StreamEvent]:
    """The events a cached reply is replayed as: what a live stream would have emitted."""
    events: list[StreamEvent] = []
    for part in response.content:
        if part.kind == "text":
            events.append(TextDelta(part.text))
        elif part.kind == "reasoning" and part.text:
            events.append(ReasoningDelta(part.text))
        elif part.kind == "refusal":
            events.append(RefusalDelta(part.text))
        elif part.kind == "tool_call":
            events.append(ToolCallEvent(part))
    events += [FinishEvent(response.finish_reason), UsageEvent(response.usage)]
    return events


class ReplayStream(Stream):
    """A cached reply served as a stream: the same events, no connection."""

    def __init__(self, response: Response) -> None:
        self._response: Response | None = response
        self._source = response
        self._iterator = iter(_replayed(response))
        self._closed = False

    def _expect_output(self, parser: OutputParser) -> None:
        self._response = None  # until the replayed reply has been validated
        super()._expect_output(parser)

    def _finished(self) -> Response:
        return self._source

    @property
    def headers(self) -> Mapping[str, str]:
        return {}

    def watch(self, *callbacks: Any) -> None:
        """A replay reports nothing more: the cache hit was already logged."""

    def _then(self, step: Callable[[Response], Response]) -> None:
        self._response = step(self.response)  # a replayed reply is complete already

    @property
    def response(self) -> Response:
        if self._response is None:
            for _ in self._iterator:
                pass
        return self._response or self._source

    def close(self) -> None:
        self._closed = True


class AsyncReplayStream(AsyncStream):
    """The async twin of :class:`ReplayStream`."""

    def __init__(self, response: Response) -> None:
        self._response: Response | None = response
        self._source = response
        self._iterator = _aiter(_replayed(response))
        self._closed = False

    def _expect_output(self, parser: OutputParser) -> None:
        self._response = None  # until the replayed reply has been validated
        super()._expect_output(parser)

    def _finished(self) -> Response:
        return self._source

    @property
    def headers(self) -> Mapping[str, str]:
        return {}

    def watch(self, *callbacks: Any) -> None:
        """A replay reports nothing more: the cache hit was already logged."""

    def _then(self, step: Callable[[Response], Response]) -> None:
        self._response = step(self.response)  # a replayed reply is complete already

    @property
    def response(self) -> Response:
        return self._response or self._source

    async def get_response(self) -> Response:
        if self._response is None:
            async for _ in self._iterator:
                pass
        return self.response

    async def close(self) -> None:
        self._closed = True


async def _aiter(events: list[StreamEvent]) -> AsyncIterator[StreamEvent]:
    for event in events:
        yield event
