"""callm's pytest plugin: the ``fake_openai`` fixture (registered through ``pytest11``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._server import FakeOpenAIServer


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    """A started :class:`~callm.testing.FakeOpenAIServer`, stopped after the test.

    Point a client at ``fake_openai.base_url``; script it with ``fake_openai.queue(...)``.
    """
    with FakeOpenAIServer() as server:
        yield server
