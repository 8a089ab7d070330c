"""``FakeOpenAIServer``: a real HTTP server on loopback, on its own thread and event loop."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING

from ._script import Fault, RecordedRequest, Reply
from ._state import ServerState

if TYPE_CHECKING:
    import asyncio

    from aiohttp import web

DEFAULT_MODELS = ("offline", "gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "o4-mini")
_START_TIMEOUT = 10.0
# Handlers still running at stop() (a stalled stream, say) get this long before cancellation.
_SHUTDOWN_TIMEOUT = 0.25


class FakeOpenAIServer:
    """Protocol-faithful fakes of the LLM APIs, all served over real HTTP on one port.

    ::

        with FakeOpenAIServer() as server:
            server.queue(Reply("Hi!"), Fault.rate_limit(retry_after=1))
            client = OpenAI(base_url=server.base_url, api_key="test")
            claude = Anthropic(base_url=server.anthropic_base_url, api_key="test")

    Scripted replies and faults are consumed in order, one per generation request, whatever
    its protocol; when the queue is empty the offline model answers. Every request is
    recorded in :attr:`requests` (unless ``record=False``: a long-lived server, such as the
    ``local`` provider's, then keeps no request once it is answered). Endpoints:

    - OpenAI Chat: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/models[/{id}]``,
      Azure's ``/openai/deployments/{name}/chat/completions?api-version=…`` and
      ``/openai/v1/…``;
    - OpenAI Responses: ``/v1/responses`` (and its Azure forms);
    - Anthropic Messages: ``/v1/messages``, ``/v1/messages/count_tokens``, ``/v1/models``
      (with an ``anthropic-version`` header);
    - Google Gemini: ``/v1beta/models/{model}:generateContent``, ``:streamGenerateContent``,
      ``:countTokens`` and ``/v1beta/models``;
    - Amazon Bedrock: ``/model/{id}/converse``, ``/converse-stream`` (AWS's binary event
      stream), ``/count-tokens`` and ``/foundation-models``, signed with SigV4 or a bearer
      API key (see :meth:`accept_aws_key`);
    - Vertex AI: Gemini and Anthropic under ``/v1/projects/{p}/locations/{l}/publishers/…``
      with OAuth 2.0 tokens from a fake token endpoint, ``/token`` (see
      :meth:`accept_google_key`);
    - the Batch APIs: OpenAI ``/v1/files`` and ``/v1/batches``, Anthropic
      ``/v1/messages/batches``, Gemini ``:batchGenerateContent`` and ``/v1beta/batches/{id}``;
      a batch ends ``batch_delay`` seconds after it is submitted, its requests answered in
      turn from the queue (a queued Fault fails that request alone).
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: Iterable[str] = DEFAULT_MODELS,
        host: str = "127.0.0.1",
        port: int = 0,
        batch_delay: float = 1.0,
        record: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self._state = ServerState(
            api_key=api_key, models=models, batch_delay=batch_delay, record=record
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (the real port once started)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ``url + "/v1"``."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The base URL for Anthropic clients (``ANTHROPIC_BASE_URL``): the server's root."""
        return self.url

    @property
    def gemini_base_url(self) -> str:
        """The base URL for Gemini clients (``GEMINI_BASE_URL``): ``url + "/v1beta"``."""
        return self.url + "/v1beta"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        return self._state.records()

    @property
    def bedrock_base_url(self) -> str:
        """The endpoint URL for Bedrock clients (``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``)."""
        return self.url

    def accept_aws_key(self, access_key_id: str, secret_access_key: str) -> None:
        """Check Bedrock requests signed with this access key against its secret.

        Without any accepted key, every well-formed, timely SigV4 signature passes (as any
        API key does on a server started without ``api_key``); once one is given, an
        unknown key id is refused and a wrong signature too, as AWS refuses them.
        """
        self._state.accept_aws_key(access_key_id, secret_access_key)

    @property
    def vertex_base_url(self) -> str:
        """The API root for Vertex AI clients (``VERTEX_BASE_URL``): ``url + "/v1"``."""
        return self.url + "/v1"

    @property
    def token_uri(self) -> str:
        """The fake OAuth 2.0 token endpoint (a credentials file's ``token_uri``)."""
        return self.url + "/token"

    def accept_google_key(self, private_key_id: str, public_key_pem: str) -> None:
        """Trust a service account's key: JWTs it signs (``kid`` = ``private_key_id``) get
        access tokens, and from then on Vertex requests need a token issued here."""
        with self._state.oauth() as oauth:
            oauth.public_keys[private_key_id] = public_key_pem

    def google_tokens(
        self, *, lifetime: int | None = None, revoke: bool = False, delay: float | None = None
    ) -> int:
        """How many token requests arrived; ``lifetime`` sets the ``expires_in`` of tokens
        issued from now on, ``revoke`` invalidates every token issued so far, ``delay``
        makes the token endpoint take that many seconds to answer."""
        with self._state.oauth() as oauth:
            if lifetime is not None:
                oauth.lifetime = lifetime
            if delay is not None:
                oauth.delay = delay
            if revoke:
                oauth.issued = dict.fromkeys(oauth.issued, 0.0)
            return oauth.token_requests

    def queue(self, *items: Reply | Fault) -> None:
        """Append replies or faults; each generation request takes the oldest one."""
        for item in items:
            if not isinstance(item, Reply | Fault):
                raise TypeError(f"queue() takes Reply or Fault values, not {type(item).__name__}")
        self._state.push(items)

    @property
    def pending(self) -> int:
        """How many queued replies and faults are still waiting to be used."""
        return self._state.pending()

    def clear(self) -> None:
        """Forget the queued items and the recorded requests."""
        self._state.clear()

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        """Start serving on a background thread; returns once the port is bound."""
        import asyncio  # here, not at the top: importing callm.testing stays cheap

        if self._thread is not None:
            raise RuntimeError("this FakeOpenAIServer is already running")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=_run_loop, args=(loop,), name="callm-fake-openai")
        thread.daemon = True
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            future = asyncio.run_coroutine_threadsafe(self._serve(), loop)
            self.port = future.result(_START_TIMEOUT)
        except BaseException:
            self._shut_loop()
            raise
        return self

    def stop(self) -> None:
        """Stop serving and release the port, the loop and the thread. Safe to repeat."""
        if self._loop is None:
            return
        import asyncio

        if self._runner is not None:
            cleanup = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            cleanup.result(_START_TIMEOUT)
            self._runner = None
        self._shut_loop()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._thread is not None else "stopped"
        return f"<FakeOpenAIServer {self.url} {state}>"

    async def _serve(self) -> int:
        from aiohttp import web

        from ._app import build_app

        runner = web.AppRunner(
            build_app(self._state),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=_SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        return int(runner.addresses[0][1])

    def _shut_loop(self) -> None:
        loop, thread = self._loop, self._thread
        assert loop is not None
        assert thread is not None
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._loop = self._thread = None


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    """The server thread: run until stopped, then cancel leftovers and close cleanly."""
    import asyncio

    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()
