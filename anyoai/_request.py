"""APIRequest: one API call, ready to send to whichever backend the pool picks.

A resource builds it once: the JSON body is encoded here, a single time, and every attempt (on
any backend) sends the same bytes with the same idempotency key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ._config import Timeout

__all__ = ["APIRequest", "Reply", "RequestOptions"]


@attrs.frozen(kw_only=True)
class RequestOptions:
    """The per-call options every API method takes besides its parameters."""

    extra_headers: Mapping[str, str] | None = None
    extra_query: Mapping[str, Any] | None = None
    extra_body: Mapping[str, Any] | None = None
    timeout: Timeout | None = None
    max_retries: int | None = None


@attrs.frozen(kw_only=True)
class APIRequest:
    """An HTTP request in backend-neutral form.

    :ivar method: ``"GET"``, ``"POST"`` or ``"DELETE"``.
    :ivar path: the path under the API root, e.g. ``"/chat/completions"`` (the backend adds its
        base path, or Azure's ``/openai/deployments/{deployment}``).
    :ivar body: the encoded body, or ``None``.
    :ivar content_type: the body's media type.
    :ivar model: the model the request is for, used to pick and address a backend.
    :ivar deployment_scoped: whether Azure serves this path under a deployment.
    :ivar stream: whether the answer is a server-sent-events stream.
    :ivar payload: the body as data (before encoding), for estimating its token cost.
    :ivar idempotency_key: sent as ``Idempotency-Key`` on every attempt.
    """

    method: str
    path: str
    body: bytes | None = None
    content_type: str = "application/json"
    query: Mapping[str, Any] | None = None
    headers: Mapping[str, str] | None = None
    model: str | None = None
    deployment_scoped: bool = False
    stream: bool = False
    payload: Mapping[str, Any] | None = None
    idempotency_key: str | None = None
    timeout: Timeout | None = None
    max_retries: int | None = None


@attrs.frozen(kw_only=True)
class Reply:
    """A successful (2xx) non-streamed answer: the body and what is known of the exchange."""

    body: bytes
    status: int
    headers: Mapping[str, str]
    backend: str
    attempts: int
    elapsed: float
    http_version: str = "HTTP/1.1"
    settle_tokens: Callable[[int], None] | None = None
    report: Callable[[Any], None] | None = None

    def settle(self, actual_tokens: int) -> None:
        """Charge the real token usage (to the rate limiter, instead of the estimate)."""
        if self.settle_tokens is not None:
            self.settle_tokens(actual_tokens)

    @property
    def request_id(self) -> str | None:
        """``x-request-id`` (OpenAI) or ``apim-request-id`` (Azure)."""
        return self.headers.get("x-request-id") or self.headers.get("apim-request-id")
