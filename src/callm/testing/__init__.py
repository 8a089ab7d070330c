"""Test against a real-HTTP fake of the OpenAI API, with scripted replies and faults.

::

    from callm.testing import FakeOpenAIServer, Fault, Reply

    with FakeOpenAIServer() as server:
        server.queue(Fault.rate_limit(retry_after=0), Reply("Hello!"))
        ...  # point any OpenAI-compatible client at server.base_url
        assert len(server.requests) == 2

With nothing queued, callm's offline model answers (see :mod:`callm.testing.local_model`).
Embeddings (``/v1/embeddings``, Gemini's ``:batchEmbedContents``) are answered by the
offline hashing model (:mod:`callm.testing.local_embedding`); a queued Fault applies to them.
Under pytest, the ``fake_openai`` fixture gives each test a started server.
"""

from ._script import FakeToolCall, Fault, RecordedRequest, Reply
from ._server import FakeOpenAIServer

__all__ = ["FakeOpenAIServer", "Reply", "FakeToolCall", "Fault", "RecordedRequest"]
