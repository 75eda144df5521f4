"""A fake OpenAI API server on loopback, for tests (this project's and yours).

A real HTTP/1.1 server (anyio + h11, under asyncio or trio) that answers the chat completions,
completions, embeddings, models, moderations and edits endpoints, and the Files, Uploads and
Batch APIs, with deterministic bodies shaped like the OpenAI API's, records every request, and
injects faults: error statuses, latency,
connections dropped before the headers or in the middle of a body or stream, malformed JSON,
error events in streams.

::

    from anyoai.testing import FakeServer, Fault

    async with FakeServer(api_key="sk-test") as server:
        server.add_fault(Fault(status=429, retry_after=1), path="/chat/completions")
        ...  # point the client at server.url ("http://127.0.0.1:PORT/v1")
        assert server.requests[-1].json["model"] == "gpt-4o-mini"

It also keeps files, uploads and batches for its lifetime: the Files API (multipart uploads,
lists, content), the Uploads API, and a Batch API whose batches move one step at every
retrieval and run their requests through the server's own endpoints::

    async with FakeServer() as server:
        ...  # POST /v1/files, POST /v1/batches, then GET /v1/batches/{id} three times
        assert server.batches["batch_fake_000002"].status == "completed"
        output = server.files[server.batches["batch_fake_000002"].output_file_id].data

A batch created with ``metadata={"fake_outcome": "expired"}`` expires instead of running
(``"failed"``: it fails validation); ``FakeServer(max_file_bytes=...)`` lowers the 512 MiB
limit on files.

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

With ``azure=True`` the server is an Azure OpenAI resource: ``server.url`` is its endpoint
(``http://127.0.0.1:PORT``, no ``/v1``), requests go to ``/openai/deployments/{deployment}/...``
with an ``api-version`` query parameter and an ``api-key`` header (or an AAD bearer token), and
answers carry Azure's content-filter results::

    async with FakeServer(azure=True, api_key="k", api_version="2024-10-21",
                          deployments={"prod": "gpt-4o"}) as server:
        ...  # POST {server.url}/openai/deployments/prod/chat/completions?api-version=2024-10-21

A prompt with the word "forbidden" is refused (400 ``content_filter``), one with "cutoff" gets an
answer cut with ``finish_reason: "content_filter"``. From a shell: ``--azure``,
``--api-version``, ``--deployment NAME=MODEL`` and ``--ad-token``.

To test failover, a server can go down (connections dropped, new ones refused) and come back on
the same port: ``await server.go_down()``, ``await server.come_up()`` (``go_down_blocking()``
and ``come_up_blocking()`` for :func:`run_in_thread` servers).
"""

from __future__ import annotations

from .._clock import InstantClock, SystemClock, set_testing
from ._faults import Fault
from ._framework import RecordedRequest
from ._ratelimit import RateLimitStats
from ._server import FakeServer, run_in_thread
from ._state import StoredBatch, StoredFile, StoredPart, StoredUpload

__all__ = [
    "FakeServer",
    "Fault",
    "InstantClock",
    "RateLimitStats",
    "RecordedRequest",
    "StoredBatch",
    "StoredFile",
    "StoredPart",
    "StoredUpload",
    "SystemClock",
    "run_in_thread",
    "set_testing",
]
