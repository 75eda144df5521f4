"""A fake OpenAI API server on loopback, for tests (this project's and yours).

A real HTTP/1.1 server (anyio + h11, under asyncio or trio) that answers the chat completions,
completions, embeddings, models, moderations and edits endpoints with deterministic bodies shaped
like the OpenAI API's, records every request, and injects faults: error statuses, latency,
connections dropped before the headers or in the middle of a body or stream, malformed JSON,
error events in streams.

::

    from anyoai.testing import FakeServer, Fault

    async with FakeServer(api_key="sk-test") as server:
        server.add_fault(Fault(status=429, retry_after=1), path="/chat/completions")
        ...  # point the client at server.url ("http://127.0.0.1:PORT/v1")
        assert server.requests[-1].json["model"] == "gpt-4o-mini"

A single request can carry its own fault in the ``x-fake-fault`` header, a JSON object of
:class:`Fault` fields. Blocking tests use :func:`run_in_thread`. From a shell::

    python -m anyoai.testing --port 8000 --api-key sk-test

Answers are deterministic: tokens are counted as whitespace-separated words, ids are
``<prefix>-fake-<n:06d>`` and ``created`` is ``1700000000 + n`` for the server's n-th request.
"""

from __future__ import annotations

from ._app import RecordedRequest
from ._server import FakeServer, Fault, run_in_thread

__all__ = ["FakeServer", "Fault", "RecordedRequest", "run_in_thread"]
