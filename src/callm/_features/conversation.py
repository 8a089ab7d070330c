"""Conversations: a history kept across calls, fitted to the model's context window, persisted.

::

    conv = client.conversation("openai/gpt-4o-mini", system="Be brief.")
    conv.send("hello")                       # sends system + history + "hello"
    with conv.stream("and then?") as s:      # the reply joins the history when the stream ends
        for text in s.text_stream: ...
    client.conversation(id=conv.id)          # later, in another process: carry on

**What is kept and what is sent.** ``conv.messages`` always holds the whole history (the
store too); only what is *sent* is fitted. Before each call callm counts the tokens of the
system prompt, the tools, the history and the new message (``callm._tokens.local_count``)
against the model's context window minus the tokens kept for the reply (see
``callm._context``), and, when they do not fit, applies the conversation's strategy:

- ``"drop_oldest"`` (default): leave out whole turns, oldest first. A turn is a user message
  and everything after it up to the next user message, so a tool call is never separated from
  its result. The system prompt and the newest turn are always sent.
- ``"summarize"``: replace the oldest turns with a summary written by a model call
  (``summary_model``, default the conversation's model), sent after the system prompt. The
  summary is kept (and stored) and only extended when more turns must go.

When even the system prompt and the newest turn cannot fit, ``ContextWindowExceededError`` is
raised before anything is sent. When the model's window is unknown (not in genai-prices and
no ``context_window=`` given), nothing is trimmed: the provider says if the prompt is too long.

**Failures leave no trace.** The new message joins the history only with its reply: a call
that fails, a stream that breaks off or is closed early, leave the history as it was, so the
same ``send()`` can simply be retried. Send one message at a time per conversation.

**Several writers lose nothing.** Each save appends to the store atomically and adds its
calls' usage and cost to the stored totals. When another process (or another copy of the
conversation) continued it meanwhile, the new turn is stored after the other's, and this
copy takes up the stored history so its next turn sends all of it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Literal, TypeAlias, TypeVar, Unpack, cast

from .._core.errors import CallmError, ContextWindowExceededError, InvalidRequestError
from .._core.json import get_object
from .._core.params import CallParams
from .._core.types import Message, Part, Request, Response, Text, Tool, ToolCall, ToolResult, Usage
from .._engine.stream import AsyncStream, OpeningStream, Stream
from .._policies.tokens import local_count
from .context import context_window as known_context_window
from .context import output_reserve, summary_tokens
from .messages import to_message, to_tools

logger = logging.getLogger("callm")

if TYPE_CHECKING:
    from .._store import Store
    from .._store._conversations import StoredConversation
    from .caller import AsyncConversationHost, ConversationHost, Host

Strategy: TypeAlias = Literal["drop_oldest", "summarize"]
STRATEGIES: tuple[Strategy, ...] = ("drop_oldest", "summarize")
# What send() and stream() take: text and parts (one user message), or whole messages.
ContentInput: TypeAlias = str | Part | os.PathLike[str] | Message | Mapping[str, object] | Response
S = TypeVar("S", Stream, AsyncStream)
T = TypeVar("T")

# Call defaults that are stored with a conversation and come back on resume. The rest —
# tools (Python functions), output types, timeouts, extra_headers (they may hold keys) —
# must be passed again when resuming.
_STORED_PARAMS = (
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "seed",
    "user",
    "tool_choice",
    "response_format",
    "extra_body",
    "max_retries",
    "cache",
    "output_retries",
    "tags",
    "log",
    "response_cache",
)
# The parameters of the conversation's calls that the summary call shares.
_SUMMARY_PARAMS = ("timeout", "max_retries", "tags", "log", "extra_headers")
SUMMARY_INSTRUCTIONS = (
    "You summarise conversations so they can be continued without their full text. Write a "
    "concise summary of the conversation you are given that keeps every fact, name, number, "
    "decision, tool result and open question needed to continue it. Reply with the summary "
    "only."
)
SUMMARY_HEADING = "Summary of the earlier conversation:"


class ConversationOptions(CallParams, total=False):
    """What :meth:`callm.Client.conversation` takes besides the model: the conversation's
    own options (see :class:`Conversation`) and the call defaults."""

    id: str | None
    strategy: Strategy | None
    context_window: int | None
    max_output_tokens: int | None
    summary_model: str | None
    persist: bool


@dataclass(frozen=True, slots=True)
class _Send:
    """Fitting is done: send these messages."""

    messages: tuple[Message, ...]


@dataclass(frozen=True, slots=True)
class _Summarize:
    """Fitting needs a summary first: ask the summary model this, then plan again."""

    messages: tuple[Message, ...]
    covers: int  # the history messages the new summary stands for: [0, covers)
    max_tokens: int


class _Core:
    """A conversation's state and every decision about it; the clients only do the I/O."""

    def __init__(
        self,
        client: Host,
        model: str | None,
        *,
        system: str | None,
        id: str | None,
        strategy: Strategy | None,
        context_window: int | None,
        max_output_tokens: int | None,
        summary_model: str | None,
        persist: bool,
        params: CallParams,
    ) -> None:
        self.client = client
        self.persist = persist
        self.unsaved: list[Message] = []  # messages a failed save left for the next one
        stored = self._load(id) if persist and id is not None else None
        options: Mapping[str, object] = stored.options if stored is not None else {}
        self.resumed = stored is not None
        self.id = id if id is not None else _new_id()
        self.model = model if model is not None else stored.model if stored else None
        self.system = system if system is not None else stored.system if stored else None
        self.strategy = _strategy(strategy or options.get("strategy") or "drop_oldest")
        self.window_override = _given(context_window, options, "context_window", int)
        self.max_output_tokens = _given(max_output_tokens, options, "max_output_tokens", int)
        self.summary_model = _given(summary_model, options, "summary_model", str)
        self.params = cast("CallParams", {**get_object(options, "params"), **params})
        self.history: list[Message] = list(stored.messages) if stored else []
        self.summary = stored.summary if stored else None
        self.summary_covers = stored.summary_covers if stored else 0
        self.usage = stored.usage if stored else Usage()
        self.cost: Decimal | None = stored.cost if stored else Decimal(0)
        # What the calls since the last save used: added to the stored totals, so another
        # process continuing the conversation at the same time loses none of its own.
        self.unsaved_usage = Usage()
        self.unsaved_cost: Decimal | None = Decimal(0)
        self._sizes: list[int] = []  # token counts of self.history[: len(self._sizes)]
        self._window: tuple[int | None, str] | None = None

    # -- the model and its window --------------------------------------------------------

    def target(self) -> tuple[int | None, str]:
        """The context window to fit (None: unknown) and the ``provider/model`` to count for."""
        if self._window is None:
            self._window = self._lookup_window()
        return self._window

    def _lookup_window(self) -> tuple[int | None, str]:
        try:
            endpoint, name = self.client.resolve_model(self.model)
        except CallmError:  # an alias or a routing group: no single model to look up
            return self.window_override, self.model or ""
        full = f"{endpoint.provider}/{name}"
        if self.window_override is not None:
            return self.window_override, full
        return known_context_window(endpoint.provider, name, endpoint.protocol), full

    # -- a turn: what is new, what is sent, what is kept -----------------------------------

    def begin(
        self, content: Sequence[ContentInput], params: CallParams
    ) -> tuple[list[Message], CallParams]:
        """The new messages of a send() and its call parameters (defaults + this call's)."""
        pending = _new_messages(content)
        if not pending and not self.history:
            raise InvalidRequestError("send() needs a message: the conversation is empty")
        merged = {"conversation_id": self.id, **self.params, **params}
        return pending, cast("CallParams", merged)

    def plan(self, pending: Sequence[Message], params: CallParams) -> _Send | _Summarize:
        """What to send for history + ``pending``, or the summary to make first."""
        history = [*self.history, *pending]
        covered = self.summary_covers if self.summary else 0
        window, model = self.target()
        prefix = self._prefix(self.summary)
        if window is None:
            return _Send((*prefix, *history[covered:]))
        budget = window - output_reserve(window, params.get("max_tokens"), self.max_output_tokens)
        sizes, starts = self._sizes_of(history), turn_starts(history)
        tools = to_tools(params.get("tools"))
        start = fit_start(sizes, starts, budget - self._count(model, prefix, tools), covered)
        if start == covered:
            return _Send((*prefix, *history[covered:]))
        bare = self._prefix(None)
        bare_size = self._count(model, bare, tools)
        if self.strategy == "summarize":
            room = summary_tokens(budget) + self._count(
                model, (Message.system(SUMMARY_HEADING),), ()
            )
            limit = len(self.history)  # only committed messages are summarised
            upto = fit_start(
                sizes, starts[: _upto(starts, limit)], budget - bare_size - room, covered + 1
            )
            if upto is not None:
                return _Summarize(self._summary_request(history[covered:upto]), upto, room)
        if start is not None:
            return _Send((*prefix, *history[start:]))
        start = fit_start(sizes, starts, budget - bare_size, covered)
        if start is not None:  # the summary itself does not fit beside the newest turn
            return _Send((*bare, *history[start:]))
        raise self._too_big(model, window, budget, bare_size + sum(sizes[starts[-1] :]))

    def summarized(self, step: _Summarize, response: Response) -> None:
        """Keep the summary a summary call returned (it stands for ``step.covers`` messages)."""
        self.summary, self.summary_covers = response.text.strip(), step.covers
        self._add_usage(response)
        self._save([])

    def commit(self, pending: Sequence[Message], response: Response) -> Response:
        """The reply arrived: the new messages and the reply join the history."""
        new = [*pending, response.to_message()]
        self.history += new
        self._add_usage(response)
        self._save(new)
        return replace(response, transcript=self.messages)

    def append(self, items: Sequence[Message | Mapping[str, object] | Response]) -> None:
        """Add messages to the history as they are (tool results, an assistant reply …)."""
        new = [i.to_message() if isinstance(i, Response) else to_message(i) for i in items]
        self.history += new
        self._save(new)

    @property
    def messages(self) -> tuple[Message, ...]:
        """The whole conversation: the system prompt (if any), then every message."""
        return (*self._prefix(None), *self.history)

    # -- helpers ----------------------------------------------------------------------------

    def _prefix(self, summary: str | None) -> tuple[Message, ...]:
        """The system message, with ``summary`` appended when there is one."""
        texts = [t for t in (self.system, summary and f"{SUMMARY_HEADING}\n{summary}") if t]
        return (Message.system("\n\n".join(texts)),) if texts else ()

    def _sizes_of(self, history: Sequence[Message]) -> list[int]:
        _, model = self.target()
        known = len(self._sizes)
        self._sizes += [self._count(model, (m,), ()) for m in self.history[known:]]
        extra = [self._count(model, (m,), ()) for m in history[len(self._sizes) :]]
        return [*self._sizes, *extra]

    def _count(self, model: str, messages: Sequence[Message], tools: tuple[Tool, ...]) -> int:
        name = model.partition("/")[2] or model
        request = Request(model=name, messages=tuple(messages), tools=tools)
        return local_count(model, request).tokens

    def _summary_request(self, dropped: Sequence[Message]) -> tuple[Message, ...]:
        lines = [f"Summary so far:\n{self.summary}\n"] if self.summary else []
        lines += ["Conversation:", *(_transcript_line(m) for m in dropped)]
        return (Message.system(SUMMARY_INSTRUCTIONS), Message.user("\n".join(lines)))

    def summary_params(self, step: _Summarize, params: CallParams) -> CallParams:
        kept = cast("CallParams", {k: v for k, v in params.items() if k in _SUMMARY_PARAMS})
        # Two thirds of the room kept for it: the local count overestimates (3 characters a
        # token where models average 4), and a summary that overflows costs another call.
        kept["max_tokens"] = max(1, step.max_tokens * 2 // 3)
        return kept

    def _too_big(self, model: str, window: int, budget: int, needed: int) -> CallmError:
        return ContextWindowExceededError(
            f"the newest message needs about {needed} tokens with the system prompt and tools, "
            f"but {model} has a {window}-token context window with {window - budget} kept for "
            f"the reply ({budget} left for the prompt); nothing was sent. Shorten the message, "
            "lower max_tokens, or pass context_window= if the window is wrong",
            provider=model.partition("/")[0] or None,
        )

    def _add_usage(self, response: Response) -> None:
        self.usage += response.usage
        self.unsaved_usage += response.usage
        self.cost = _plus(self.cost, response.cost)
        self.unsaved_cost = _plus(self.unsaved_cost, response.cost)

    # -- the store ----------------------------------------------------------------------------

    def _store(self) -> Store:
        store: Store = self.client.pipeline.store()
        return store

    def _load(self, conversation_id: str) -> StoredConversation | None:
        from .._store._conversations import load_conversation

        return load_conversation(self._store(), conversation_id)

    def _save(self, new: Sequence[Message]) -> None:
        """Store the header and the new messages. A store that fails loses nothing: the
        reply still reaches the caller, and the unsaved messages go with the next save."""
        if not self.persist:
            return
        from .._store import StoreError, warn_once
        from .._store._conversations import StoredConversation, save_conversation

        new = [*self.unsaved, *new]

        options = {
            "strategy": self.strategy,
            "context_window": self.window_override,
            "max_output_tokens": self.max_output_tokens,
            "summary_model": self.summary_model,
            "params": _storable(self.params),
        }
        stored = StoredConversation(
            self.id,
            self.model,
            self.system,
            options,
            self.summary,
            self.summary_covers,
            self.usage,
            self.cost,
            tuple(self.history),
        )
        try:
            before = save_conversation(
                self._store(), stored, new, usage=self.unsaved_usage, cost=self.unsaved_cost
            )
        except StoreError as error:  # one line, once: the reply still reaches the caller
            self.unsaved = new
            warn_once(
                error,
                f"conversation {self.id} could not be saved (kept, tried again with its next "
                "message); answers still come",
            )
            return
        except Exception:
            self.unsaved = new
            logger.warning(
                "callm: conversation %s could not be saved; will retry with its next message",
                self.id,
                exc_info=True,
            )
            return
        self.unsaved, self.unsaved_usage, self.unsaved_cost = [], Usage(), Decimal(0)
        if before > len(self.history) - len(new):
            self._catch_up()

    def _catch_up(self) -> None:
        """Another writer appended turns first (ours went after them): take the stored
        history and totals, so the next turn sends everything the conversation holds."""
        stored = self._load(self.id)
        if stored is not None:
            self.history = list(stored.messages)
            self.usage, self.cost = stored.usage, stored.cost
            self._sizes = []


# -- pure helpers --------------------------------------------------------------------------------


def turn_starts(history: Sequence[Message]) -> list[int]:
    """Where each turn begins: 0, then every user message that is not only tool results."""
    return [0] + [i for i, m in enumerate(history) if i > 0 and _opens_turn(m)]


def _opens_turn(message: Message) -> bool:
    return message.role == "user" and not all(isinstance(p, ToolResult) for p in message.content)


def fit_start(sizes: Sequence[int], starts: Sequence[int], budget: int, lowest: int) -> int | None:
    """The earliest turn start at or after ``lowest`` whose suffix fits ``budget`` tokens."""
    remaining = sum(sizes[lowest:])
    position = lowest
    for start in starts:
        if start < lowest:
            continue
        remaining -= sum(sizes[position:start])
        position = start
        if remaining <= budget:
            return start
    return None


def _upto(starts: Sequence[int], limit: int) -> int:
    """How many of ``starts`` are at or before ``limit``."""
    return sum(1 for s in starts if s <= limit)


def _new_messages(content: Sequence[ContentInput]) -> list[Message]:
    """Text and parts become one user message; messages and Responses are taken as they are."""
    if not content:
        return []
    parts = [c for c in content if not isinstance(c, Message | Mapping | Response)]
    if len(parts) == len(content):
        return [Message.user(*parts)]
    return [_as_message(c) for c in content]


def _as_message(item: ContentInput) -> Message:
    if isinstance(item, Response):
        return item.to_message()
    if isinstance(item, Message | Mapping):
        return to_message(item)
    return Message.user(item)


def _transcript_line(message: Message) -> str:
    """One message as a line of the text a summary is made from."""
    return f"{message.role}: " + " ".join(_part_text(p) for p in message.content)


def _part_text(part: Part) -> str:
    if isinstance(part, Text):
        return part.text
    if isinstance(part, ToolCall):
        return f"[called {part.name}({json.dumps(dict(part.arguments), ensure_ascii=False)})]"
    if isinstance(part, ToolResult):
        return f"[{part.name or 'tool'} returned: {part.content}]"
    return f"[{part.kind}]"


def _storable(params: CallParams) -> dict[str, object]:
    """The call defaults that can be stored as JSON and hold no secret (see _STORED_PARAMS)."""
    kept: dict[str, object] = {}
    for key in _STORED_PARAMS:
        if key in params:
            try:
                kept[key] = json.loads(json.dumps(params[key]))  # type: ignore[literal-required]
            except (TypeError, ValueError):
                continue
    return kept


def _plus(total: Decimal | None, cost: Decimal | None) -> Decimal | None:
    """A running cost: unknown (None) as soon as one part of it is."""
    return None if total is None or cost is None else total + cost


def _strategy(name: object) -> Strategy:
    for strategy in STRATEGIES:
        if name == strategy:
            return strategy
    raise InvalidRequestError(f"strategy must be one of {', '.join(STRATEGIES)}, not {name!r}")


def _given(value: T | None, stored: Mapping[str, object], key: str, kind: type[T]) -> T | None:
    """The value given, else the stored option ``key`` when it is a ``kind``."""
    if value is not None:
        return value
    kept = stored.get(key)
    return kept if isinstance(kept, kind) else None


def _new_id() -> str:
    from .._store import new_id

    return new_id()


def _hooked(stream: S, commit: Callable[[Response], Response]) -> S:
    """Let the stream's completion commit its reply (and only its completion)."""
    stream._then(commit)
    return stream


# -- the two faces -------------------------------------------------------------------------------


class _ConversationBase:
    """What both conversation classes show: the history, its totals, its settings."""

    _core: _Core

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(id={self.id!r}, model={self.model!r}, "
            f"messages={len(self._core.history)})"
        )

    @property
    def id(self) -> str:
        """The conversation's id: ``client.conversation(id=…)`` resumes it."""
        return self._core.id

    @property
    def model(self) -> str | None:
        return self._core.model

    @property
    def system(self) -> str | None:
        return self._core.system

    @property
    def strategy(self) -> Strategy:
        return self._core.strategy

    @property
    def resumed(self) -> bool:
        """Whether this conversation was loaded from the store."""
        return self._core.resumed

    @property
    def messages(self) -> tuple[Message, ...]:
        """Every message: the system prompt (if any) and the whole history, never trimmed."""
        return self._core.messages

    @property
    def summary(self) -> str | None:
        """The summary that stands in for the oldest turns (strategy "summarize"), if any."""
        return self._core.summary

    @property
    def context_window(self) -> int | None:
        """The window fitted to: ``context_window=`` or genai-prices' value (None: unknown)."""
        return self._core.target()[0]

    @property
    def usage(self) -> Usage:
        """The tokens of every call of the conversation (summaries included), summed."""
        return self._core.usage

    @property
    def cost(self) -> Decimal | None:
        """The USD cost of every call, summed; None when any call's price was unknown."""
        return self._core.cost

    def append(self, *messages: Message | Mapping[str, object] | Response) -> None:
        """Add messages to the history without calling the model (tool results, say)."""
        self._core.append(messages)


class Conversation(_ConversationBase):
    """A conversation with a model; see :meth:`callm.Client.conversation`.

    ``id``: resume the stored conversation with this id (its model, system prompt, strategy,
    call defaults, history and summary come back; arguments given here win), or start a new
    one under this id when none is stored. ``strategy``: ``"drop_oldest"`` (default) or
    ``"summarize"``. ``context_window``: the window in tokens, overriding genai-prices'.
    ``max_output_tokens``: the tokens kept for the reply when a call gives no ``max_tokens``
    (default min(4096, window / 4)). ``summary_model``: who writes summaries (default: the
    conversation's model). ``persist``: save to the store (``$CALLM_HOME/callm.db``) as it
    goes (default True). Other keywords are call defaults (temperature, tools …) for every
    ``send()``; a ``send()`` can override them.
    """

    def __init__(
        self,
        client: ConversationHost,
        model: str | None = None,
        *,
        id: str | None = None,
        strategy: Strategy | None = None,
        context_window: int | None = None,
        max_output_tokens: int | None = None,
        summary_model: str | None = None,
        persist: bool = True,
        **call_defaults: Unpack[CallParams],
    ) -> None:
        self._client = client
        self._core = _Core(
            client,
            model,
            system=call_defaults.pop("system", None),  # the conversation's, not each call's
            id=id,
            strategy=strategy,
            context_window=context_window,
            max_output_tokens=max_output_tokens,
            summary_model=summary_model,
            persist=persist,
            params=call_defaults,
        )

    def send(self, *content: ContentInput, **params: Unpack[CallParams]) -> Response:
        """Send a message and return the reply; both join the history.

        ``content``: text and parts (one user message), or Messages / dicts / a Response to
        add as they are; nothing continues the conversation as it is (after ``append`` of
        tool results). The Response's ``transcript`` is the whole conversation.
        """
        core = self._core
        pending, params = core.begin(content, params)
        window = self._fitted(pending, params)
        return core.commit(pending, self._client.complete(core.model, window, **params))

    def stream(self, *content: ContentInput, **params: Unpack[CallParams]) -> Stream:
        """:meth:`send`, streamed. The reply joins the history when the stream completes; a
        stream that fails or is closed early leaves the history as it was."""
        core = self._core
        pending, params = core.begin(content, params)
        window = self._fitted(pending, params)
        stream = self._client.stream(core.model, window, **params)
        return _hooked(stream, lambda r: core.commit(pending, r))

    def _fitted(self, pending: list[Message], params: CallParams) -> tuple[Message, ...]:
        core = self._core
        while True:
            step = core.plan(pending, params)
            if isinstance(step, _Send):
                return step.messages
            summarizer = core.summary_model or core.model
            reply = self._client.complete(
                summarizer, step.messages, **core.summary_params(step, params)
            )
            core.summarized(step, reply)


class AsyncConversation(_ConversationBase):
    """The async twin of :class:`Conversation`: ``await conv.send(…)``, ``await conv.stream(…)``."""

    def __init__(
        self,
        client: AsyncConversationHost,
        model: str | None = None,
        *,
        id: str | None = None,
        strategy: Strategy | None = None,
        context_window: int | None = None,
        max_output_tokens: int | None = None,
        summary_model: str | None = None,
        persist: bool = True,
        **call_defaults: Unpack[CallParams],
    ) -> None:
        self._client = client
        self._core = _Core(
            client,
            model,
            system=call_defaults.pop("system", None),  # the conversation's, not each call's
            id=id,
            strategy=strategy,
            context_window=context_window,
            max_output_tokens=max_output_tokens,
            summary_model=summary_model,
            persist=persist,
            params=call_defaults,
        )

    async def send(self, *content: ContentInput, **params: Unpack[CallParams]) -> Response:
        """Send a message and return the reply; both join the history (see Conversation)."""
        core = self._core
        pending, params = core.begin(content, params)
        window = await self._fitted(pending, params)
        return core.commit(pending, await self._client.complete(core.model, window, **params))

    def stream(self, *content: ContentInput, **params: Unpack[CallParams]) -> OpeningStream:
        """Stream a reply: ``async with conv.stream("…") as s`` (or ``await`` it); it joins
        the history when the stream completes."""
        return OpeningStream(self._stream(content, params))

    async def _stream(self, content: tuple[ContentInput, ...], params: CallParams) -> AsyncStream:
        core = self._core
        pending, params = core.begin(content, params)
        window = await self._fitted(pending, params)
        stream = await self._client.stream(core.model, window, **params)
        return _hooked(stream, lambda r: core.commit(pending, r))

    async def _fitted(self, pending: list[Message], params: CallParams) -> tuple[Message, ...]:
        core = self._core
        while True:
            step = core.plan(pending, params)
            if isinstance(step, _Send):
                return step.messages
            summarizer = core.summary_model or core.model
            reply = await self._client.complete(
                summarizer, step.messages, **core.summary_params(step, params)
            )
            core.summarized(step, reply)
