"""APIRequest: one API call, ready to send to whichever backend the pool picks.

A resource builds it once: the JSON body is encoded here, a single time, and every attempt (on
any backend) sends the same bytes with the same idempotency key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ._config import Timeout

if TYPE_CHECKING:
    from ._tokens import TokenEstimate

__all__ = ["APIRequest", "BodySource", "CallOptions"]


@attrs.frozen(kw_only=True)
class CallOptions:
    """The per-call options every API method takes besides its parameters, once checked (the
    parameters' TypedDict of the same keys is :class:`anyoai.types.params.RequestOptions`)."""

    extra_headers: Mapping[str, str] | None = None
    extra_query: Mapping[str, Any] | None = None
    extra_body: Mapping[str, Any] | None = None
    timeout: Timeout | None = None
    max_retries: int | None = None


@attrs.frozen(kw_only=True)
class BodySource:
    """A request body streamed rather than held in memory (a file upload read from storage).

    :ivar open: makes a new iterator over the body's bytes; every attempt calls it again.
    :ivar length: the body's size in bytes (sent as ``Content-Length``), or ``None`` to send it
        with chunked transfer encoding.
    :ivar replayable: whether :attr:`open` can be called more than once; a one-shot body is not
        retried once it has started to go out.
    """

    open: Callable[[], AsyncIterator[bytes]]
    length: int | None
    replayable: bool = True


@attrs.frozen(kw_only=True)
class APIRequest:
    """An HTTP request in backend-neutral form.

    :ivar method: ``"GET"``, ``"POST"`` or ``"DELETE"``.
    :ivar path: the path under the API root, e.g. ``"/chat/completions"`` (the backend adds its
        base path, or Azure's ``/openai/deployments/{deployment}``).
    :ivar body: the encoded body, a :class:`BodySource` streaming it, or ``None``.
    :ivar content_type: the body's media type.
    :ivar model: the model the request is for, used to pick and address a backend.
    :ivar deployment_scoped: whether Azure serves this path under a deployment.
    :ivar stream: whether the answer's body is read by the caller, as it arrives (a
        server-sent-events stream, or a download when :attr:`accept` says so).
    :ivar accept: the ``Accept`` header (default: by :attr:`stream`, SSE or JSON).
    :ivar estimate: the request's token cost, estimated by its resource when a token limit
        asks (``None``: the endpoint costs no tokens).
    :ivar idempotency_key: sent as ``Idempotency-Key`` on every attempt.
    """

    method: str
    path: str
    body: bytes | BodySource | None = None
    content_type: str = "application/json"
    query: Mapping[str, Any] | None = None
    headers: Mapping[str, str] | None = None
    model: str | None = None
    deployment_scoped: bool = False
    stream: bool = False
    accept: str | None = None
    estimate: TokenEstimate | None = None
    idempotency_key: str | None = None
    timeout: Timeout | None = None
    max_retries: int | None = None
