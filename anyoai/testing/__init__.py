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

Rate limits work as OpenAI's, with token buckets that refill continuously, so client-side
limiters and retry policies can be tested against them, time-scaled if need be::

    async with FakeServer(rpm=60, tpm=10_000, rate_limit_period=1.0, latency=0.05) as server:
        ...  # 429 rate_limit_exceeded with retry-after(-ms) once a bucket runs short
        stats = server.rate_limit_stats()  # accepted, rejected, tokens charged, events

A request costs 1 request and its prompt tokens plus the completion tokens ``max_tokens``
reserves (refunded when unused); every response carries the ``x-ratelimit-*`` headers of the
limits that are set. See :class:`FakeServer`. From a shell: ``--rpm``, ``--tpm``,
``--rate-limit-period`` and ``--latency``.
"""

from __future__ import annotations

from .._waits import set_testing
from ._app import RecordedRequest
from ._ratelimit import RateLimitStats
from ._server import FakeServer, Fault, run_in_thread

__all__ = [
    "FakeServer",
    "Fault",
    "RateLimitStats",
    "RecordedRequest",
    "run_in_thread",
    "set_testing",
]
