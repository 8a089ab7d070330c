"""Client.run(): call the model, execute the tools it asks for, repeat until it answers.

The bookkeeping is pure and shared (:class:`_Loop`: the history, the step count, the
tool_choice of each step; :func:`_prepare`: finding the tool and validating its arguments);
the four drivers — ``run_tools``, ``run_tools_async``, :class:`RunStream`,
:class:`AsyncRunStream` — only make the model calls and run the functions.

Decisions worth knowing:

- Anything that goes wrong with one call is reported back to the model as an error
  ToolResult, never raised: an unknown tool name, a tool given as a schema only (no Python
  function to run), arguments that are not JSON or do not fit the hints, a refusal by
  ``approve``, an exception raised by the function (``"<ExcType>: <message>"``).
- A forced ``tool_choice`` (``"required"`` or a named tool) applies to the first model call
  only; later steps use ``"auto"`` so the model can answer instead of looping forever.
- A tool call whose arguments were not a JSON object stays in the history with ``{}`` as
  its arguments (the text received is kept in ``raw_arguments`` and quoted in the error
  result), because Anthropic and Gemini cannot take anything but an object back.
- When the model still asks for tools after ``max_steps`` calls, those calls are not run:
  MaxStepsExceededError carries the transcript, ending with that unanswered request.
- The sync client runs the calls of one step in order, an ``async def`` tool through
  ``asyncio.run`` (so not from inside a running event loop: use AsyncClient there). The
  async client awaits async tools, runs sync ones in a thread (``asyncio.to_thread``), and
  runs the calls of one step concurrently; approvals are asked one at a time, in order.
"""

from __future__ import annotations

import inspect
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Sequence,
)
from dataclasses import dataclass, field, replace
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING

from .._core.errors import CallmError, InvalidRequestError, MaxStepsExceededError
from .._core.options import tool_choice_of
from .._core.params import MessagesInput
from .._core.types import (
    Message,
    Part,
    Response,
    StreamEvent,
    Tool,
    ToolCall,
    ToolResult,
    ToolResultEvent,
    Usage,
)
from .messages import to_messages, to_tools

if TYPE_CHECKING:
    from pydantic import ValidationError

    from .._core.params import CallParams
    from .._engine.stream import AsyncStream, Stream
    from .caller import AsyncCaller, Caller

Approve = Callable[[ToolCall], object]


class _Loop:
    """The state of one run: the growing history and the step count."""

    def __init__(
        self,
        messages: MessagesInput,
        params: CallParams,
        max_steps: int,
        approve: Approve | None,
    ) -> None:
        if max_steps < 1:
            raise InvalidRequestError(f"max_steps must be at least 1, not {max_steps}")
        self.params: CallParams = params.copy()
        self.history = list(to_messages(messages, self.params.pop("system", None)))
        self.tools = {t.name: t for t in to_tools(self.params.get("tools"))}
        if self.tools:  # made into Tools once, not again at every step
            self.params["tools"] = tuple(self.tools.values())
        self.max_steps = max_steps
        self.approve = approve
        self.steps = 0
        # What every model call of the run used and cost (None once any price is unknown).
        self.usage = Usage()
        self.cost: Decimal | None = Decimal(0)

    def step_params(self) -> CallParams:
        """The parameters of the next model call: a forced tool_choice holds once only."""
        choice = self.params.get("tool_choice")
        if self.steps and choice is not None and tool_choice_of(choice).forced:
            return {**self.params, "tool_choice": "auto"}
        return self.params

    def answered(self, response: Response) -> list[ToolCall]:
        """Record the model's reply; the tool calls to run now (none: it is the answer)."""
        self.steps += 1
        self.usage += response.usage
        self.cost = (
            None if self.cost is None or response.cost is None else self.cost + response.cost
        )
        self.history.append(Message("assistant", tuple(_sendable(p) for p in response.content)))
        calls = response.tool_calls
        if calls and self.steps >= self.max_steps:
            raise MaxStepsExceededError(
                f"the model still asked for tools after {self.steps} model calls "
                f"(max_steps={self.max_steps}): raise max_steps, or read .transcript to see "
                "what it was doing",
                transcript=tuple(self.history),
                response=response,
            )
        return calls

    def record(self, result: ToolResult) -> None:
        self.history.append(Message("tool", (result,)))

    def final(self, response: Response) -> Response:
        """The last reply, with the whole transcript, and the usage and cost of every step."""
        return replace(response, transcript=tuple(self.history), usage=self.usage, cost=self.cost)


def _sendable(part: Part) -> Part:
    if isinstance(part, ToolCall) and part.invalid_arguments:
        return replace(part, arguments={}, invalid_arguments=False)
    return part


# --- one tool call ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Ready:
    """A call that found its function and whose arguments fit: ready to run."""

    call: ToolCall
    function: Callable[..., object]
    args: list[object] = field(default_factory=list)
    kwargs: dict[str, object] = field(default_factory=dict)


def _prepare(loop: _Loop, call: ToolCall) -> _Ready | ToolResult:
    """Find the call's function and validate its arguments, or the error to report."""
    tool = loop.tools.get(call.name)
    if tool is None:
        known = ", ".join(loop.tools) or "none"
        return _error(call, f"Error: there is no tool named {call.name!r} (tools: {known}).")
    if tool.function is None:
        return _error(
            call,
            f"Error: the tool {call.name!r} has no implementation available here "
            "(it was declared as a schema only), so it could not be run.",
        )
    if call.invalid_arguments:
        return _error(
            call,
            f"Error: the arguments were not a JSON object: {call.raw_arguments!r}. "
            "Call the tool again with a valid JSON object.",
        )
    return _bound(call, tool)


def _bound(call: ToolCall, tool: Tool) -> _Ready | ToolResult:
    from pydantic import ValidationError

    from .functions import signature_of

    assert tool.function is not None
    try:
        signature = signature_of(tool.function)
    except InvalidRequestError:
        # An explicit schema over a function callm cannot describe (say, **kwargs):
        # the arguments go to it as they are.
        return _Ready(call, tool.function, kwargs=dict(call.arguments))
    try:
        args, kwargs = signature.bind(call.arguments)
    except ValidationError as exc:
        return _error(call, _invalid_arguments(call.name, exc))
    return _Ready(call, tool.function, args, kwargs)


def _invalid_arguments(name: str, exc: ValidationError) -> str:
    lines = [f"Error: invalid arguments for {name}:"]
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(arguments)"
        lines.append(f"- {where}: {error['msg']}")
    return "\n".join(lines)


def _refusal(call: ToolCall, answer: object) -> ToolResult | None:
    """None when ``approve`` said yes; else the error result saying it was refused."""
    if answer and not isinstance(answer, str):
        return None
    reason = f" Reason: {answer}" if isinstance(answer, str) and answer else ""
    return _error(
        call, f"Error: the user refused this call to {call.name}; it was not run.{reason}"
    )


def _error(call: ToolCall, message: str) -> ToolResult:
    return ToolResult(call.id, message, call.name, is_error=True)


def _result(call: ToolCall, value: object) -> ToolResult:
    """A str goes back as it is; anything else as JSON (pydantic models, dataclasses too)."""
    if isinstance(value, str):
        return ToolResult(call.id, value, call.name)
    from pydantic_core import to_json

    return ToolResult(call.id, to_json(value, fallback=str).decode("utf-8"), call.name)


def _raised(call: ToolCall, exc: Exception) -> ToolResult:
    return _error(call, f"{type(exc).__name__}: {exc}")


# --- running the calls: sync --------------------------------------------------------------


def _invoke(ready: _Ready) -> ToolResult:
    try:
        value = ready.function(*ready.args, **ready.kwargs)
        if inspect.isawaitable(value):
            value = _run_awaitable(value, f"the tool {ready.call.name!r} is async")
    except _InEventLoopError:
        raise
    except Exception as exc:
        return _raised(ready.call, exc)
    return _result(ready.call, value)


class _InEventLoopError(InvalidRequestError):
    """An async tool or approve hook met the sync Client inside a running event loop."""


def _run_awaitable(awaitable: Awaitable[object], what: str) -> object:
    """Run an awaitable to completion from sync code (its own event loop)."""
    import asyncio  # here: `import callm` stays free of asyncio (and ssl)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        if inspect.iscoroutine(awaitable):
            awaitable.close()  # never awaited on purpose: no "never awaited" warning
        raise _InEventLoopError(
            f"{what} and the sync Client is running inside an event loop: use AsyncClient.run"
        )

    async def wait() -> object:
        return await awaitable

    return asyncio.run(wait())


def _approved(loop: _Loop, ready: _Ready) -> _Ready | ToolResult:
    if loop.approve is None:
        return ready
    answer = loop.approve(ready.call)
    if inspect.isawaitable(answer):
        answer = _run_awaitable(answer, "approve is async")
    return _refusal(ready.call, answer) or ready


def _results(loop: _Loop, calls: Sequence[ToolCall]) -> Iterator[tuple[ToolCall, ToolResult]]:
    """Run the calls one after another, recording each result as it is made."""
    for call in calls:
        outcome = _prepare(loop, call)
        if isinstance(outcome, _Ready):
            outcome = _approved(loop, outcome)
        result = _invoke(outcome) if isinstance(outcome, _Ready) else outcome
        loop.record(result)
        yield call, result


def run_tools(
    client: Caller,
    model: str | None,
    messages: MessagesInput,
    params: CallParams,
    *,
    max_steps: int,
    approve: Approve | None,
) -> Response:
    """Client.run(): see the module docstring."""
    loop = _Loop(messages, params, max_steps, approve)
    while True:
        response = client.complete(model, loop.history, **loop.step_params())
        calls = loop.answered(response)
        if not calls:
            return loop.final(response)
        for _ in _results(loop, calls):
            pass


# --- running the calls: async -------------------------------------------------------------


async def _invoke_async(outcome: _Ready | ToolResult) -> ToolResult:
    if isinstance(outcome, ToolResult):
        return outcome
    import asyncio

    function, args, kwargs = outcome.function, outcome.args, outcome.kwargs
    try:
        if inspect.iscoroutinefunction(function):
            value = await function(*args, **kwargs)
        else:
            value = await asyncio.to_thread(function, *args, **kwargs)
        if inspect.isawaitable(value):
            value = await value
    except Exception as exc:
        return _raised(outcome.call, exc)
    return _result(outcome.call, value)


async def _approved_async(loop: _Loop, ready: _Ready) -> _Ready | ToolResult:
    if loop.approve is None:
        return ready
    answer = loop.approve(ready.call)
    if inspect.isawaitable(answer):
        answer = await answer
    return _refusal(ready.call, answer) or ready


async def _results_async(
    loop: _Loop, calls: Sequence[ToolCall]
) -> list[tuple[ToolCall, ToolResult]]:
    """Approve the calls in order, then run them all at once; results in call order."""
    import asyncio

    outcomes: list[_Ready | ToolResult] = []
    for call in calls:
        outcome = _prepare(loop, call)
        if isinstance(outcome, _Ready):
            outcome = await _approved_async(loop, outcome)
        outcomes.append(outcome)
    results = await asyncio.gather(*(_invoke_async(o) for o in outcomes))
    for result in results:
        loop.record(result)
    return list(zip(calls, results, strict=True))


async def run_tools_async(
    client: AsyncCaller,
    model: str | None,
    messages: MessagesInput,
    params: CallParams,
    *,
    max_steps: int,
    approve: Approve | None,
) -> Response:
    """AsyncClient.run(): see the module docstring."""
    loop = _Loop(messages, params, max_steps, approve)
    while True:
        response = await client.complete(model, loop.history, **loop.step_params())
        calls = loop.answered(response)
        if not calls:
            return loop.final(response)
        await _results_async(loop, calls)


# --- streamed runs ------------------------------------------------------------------------

_CLOSED_EARLY = "the run stream was closed before the model's final answer"


class RunStream:
    """Client.run_stream(): every event of every step, and a ToolResultEvent per tool run.

    ``with client.run_stream(…) as s: for ev in s: …``, then ``s.response`` is the final
    Response with its ``transcript``.
    """

    def __init__(
        self,
        client: Caller,
        model: str | None,
        messages: MessagesInput,
        params: CallParams,
        *,
        max_steps: int,
        approve: Approve | None,
    ) -> None:
        self._client = client
        self._model = model
        self._loop = _Loop(messages, params, max_steps, approve)
        self._response: Response | None = None
        self._closed = False
        self._iterator = self._events()

    def __enter__(self) -> RunStream:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[StreamEvent]:
        return self._iterator

    def __next__(self) -> StreamEvent:
        return next(self._iterator)

    def _events(self) -> Generator[StreamEvent, None, None]:
        loop = self._loop
        while True:
            step: Stream = self._client.stream(self._model, loop.history, **loop.step_params())
            with step:
                yield from step
                response = step.response
            calls = loop.answered(response)
            if not calls:
                self._response = loop.final(response)
                return
            for call, result in _results(loop, calls):
                yield ToolResultEvent(call, result)

    @property
    def transcript(self) -> tuple[Message, ...]:
        """Every message so far: the input, and each reply and tool result as it comes."""
        return tuple(self._loop.history)

    @property
    def response(self) -> Response:
        """The final Response (with ``transcript``): runs the rest first if still open."""
        if self._response is None and not self._closed:
            for _ in self._iterator:
                pass
        if self._response is None:
            raise CallmError(_CLOSED_EARLY)
        return self._response

    def close(self) -> None:
        """Stop: close the open model stream; no further step is made."""
        if not self._closed:
            self._closed = True
            self._iterator.close()


class AsyncRunStream:
    """AsyncClient.run_stream(): ``async with ac.run_stream(…) as s: async for ev in s``.

    Then ``s.response`` (or ``await s.get_response()``) is the final Response.
    """

    def __init__(
        self,
        client: AsyncCaller,
        model: str | None,
        messages: MessagesInput,
        params: CallParams,
        *,
        max_steps: int,
        approve: Approve | None,
    ) -> None:
        self._client = client
        self._model = model
        self._loop = _Loop(messages, params, max_steps, approve)
        self._response: Response | None = None
        self._closed = False
        self._iterator = self._events()

    async def __aenter__(self) -> AsyncRunStream:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._iterator

    async def __anext__(self) -> StreamEvent:
        return await anext(self._iterator)

    async def _events(self) -> AsyncGenerator[StreamEvent, None]:
        loop = self._loop
        while True:
            step: AsyncStream = await self._client.stream(
                self._model, loop.history, **loop.step_params()
            )
            async with step:
                async for event in step:
                    yield event
                response = await step.get_response()
            calls = loop.answered(response)
            if not calls:
                self._response = loop.final(response)
                return
            for call, result in await _results_async(loop, calls):
                yield ToolResultEvent(call, result)

    @property
    def transcript(self) -> tuple[Message, ...]:
        """Every message so far: the input, and each reply and tool result as it comes."""
        return tuple(self._loop.history)

    @property
    def response(self) -> Response:
        """The final Response (with ``transcript``), once the stream has been read."""
        if self._response is None:
            raise CallmError(_CLOSED_EARLY if self._closed else "read the run stream first")
        return self._response

    async def get_response(self) -> Response:
        """The final Response: runs the rest first if the stream is still open."""
        if self._response is None and not self._closed:
            async for _ in self._iterator:
                pass
        return self.response

    async def close(self) -> None:
        """Stop: close the open model stream; no further step is made."""
        if not self._closed:
            self._closed = True
            await self._iterator.aclose()
