"""Fixtures: every async test runs under asyncio and trio, against the bundled fake server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

import anyoai
from anyoai.testing import FakeServer, set_testing

from .helpers import API_KEY


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run each async test once under asyncio and once under trio."""
    return str(request.param)


@pytest.fixture(autouse=True, scope="session")
def instant_retries() -> Iterator[None]:
    """Retry waits are instant in tests (the waits themselves are checked by the policy)."""
    set_testing(True)
    yield
    set_testing(False)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests must not pick up a developer's real OpenAI settings."""
    import os

    for name in list(os.environ):
        if name.startswith(("OPENAI_", "AZURE_OPENAI_")):
            monkeypatch.delenv(name)


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    """A fake OpenAI server on a free loopback port, in the test's own event loop."""
    async with FakeServer(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
async def pool(server: FakeServer) -> AsyncIterator[anyoai.Pool]:
    """A pool talking to :func:`server`."""
    async with anyoai.open_pool(api_key=API_KEY, base_url=server.url) as opened:
        yield opened
