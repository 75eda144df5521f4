"""The pool: one transport, a set of backends, a task group, and the API resources.

``async with anyoai.open_pool(...) as pool:`` opens it; everything it holds is closed when the
block ends, and using it afterwards raises :class:`~anyoai.PoolClosedError`. Each request runs in
the caller's task: :meth:`Pool.send` picks a backend, sends over the transport, retries by the
policy, and returns the reply (or opens a stream). Long-lived work runs in the pool's task group.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from ._backends import Backend, BackendPool
from ._compat import BaseExceptionGroup
from ._config import Settings, Timeout, read_settings
from ._errors import (
    APIError,
    APITimeoutError,
    ConfigurationError,
    PoolClosedError,
    error_from_status,
)
from ._headers import Headers
from ._request import APIRequest, Reply
from ._retry import RetryPolicy, parse_retry_after
from .resources.chat import Chat
from .resources.completions import Completions
from .resources.edits import Edits
from .resources.embeddings import Embeddings
from .resources.models import Models
from .resources.moderations import Moderations
from .types._base import NOT_GIVEN, NotGiven, ResponseMeta

if TYPE_CHECKING:
    import ssl

    from ._transport import Response, Transport, TransportStatistics

__all__ = ["Pool", "open_pool"]

logger = logging.getLogger("anyoai")


class Pool:
    """A pool of connections and backends, with the API's resources as attributes.

    Do not build it yourself: use :func:`open_pool`. Resources follow the official SDK's names:
    ``pool.chat.completions``, ``pool.completions``, ``pool.embeddings``, ``pool.models``,
    ``pool.moderations`` and the legacy ``pool.edits``.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        backends: BackendPool,
        transport: Transport,
        retry: RetryPolicy,
        task_group: anyio.abc.TaskGroup,
    ) -> None:
        self._settings = settings
        self._backends = backends
        self._transport = transport
        self._retry = retry
        self._task_group = task_group
        self._closed = False
        self._thread = threading.get_ident()
        self.chat = Chat(self)
        self.completions = Completions(self)
        self.embeddings = Embeddings(self)
        self.models = Models(self)
        self.moderations = Moderations(self)
        self.edits = Edits(self)

    # -- introspection ---------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        """The resolved settings (the API key masked in its repr)."""
        return self._settings

    @property
    def backends(self) -> tuple[Backend, ...]:
        """The pool's backends, in order."""
        return self._backends.backends

    @property
    def transport(self) -> Transport:
        """The transport; :meth:`~anyoai._transport.Transport.statistics` shows its connections."""
        return self._transport

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry policy every request of this pool follows."""
        return self._retry

    @property
    def closed(self) -> bool:
        """Whether the pool's ``async with`` block has ended."""
        return self._closed

    def statistics(self) -> TransportStatistics:
        """The transport's connection statistics."""
        return self._transport.statistics()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        backends = ", ".join(repr(b) for b in self._backends.backends)
        return f"<Pool {state} backends=[{backends}] {self._transport!r}>"

    # -- sending ---------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise PoolClosedError(
                "this pool is closed: use it inside its `async with anyoai.open_pool(...)` block"
            )
        if threading.get_ident() != self._thread:
            raise RuntimeError(
                "this pool belongs to the event loop (thread) that opened it; open a pool in "
                "each thread, or use anyoai.open_pool_sync() from blocking code"
            )

    def _timeout(self, request: APIRequest, backend: Backend) -> Timeout:
        return request.timeout or backend.timeout or self._settings.timeout

    async def _attempt(
        self, request: APIRequest, backend: Backend
    ) -> tuple[Response, bytes | None]:
        """One attempt on *backend*. Returns the response of a 2xx answer with its body read
        (``None`` for a stream, whose body the caller reads), or raises the typed error."""
        timeout = self._timeout(request, backend)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s -> backend %r", request.method, request.path, backend.name)
        try:
            with anyio.fail_after(timeout.total):
                response = await self._transport.send(
                    request.method.encode(),
                    backend.origin,
                    backend.target(request),
                    backend.request_headers(request),
                    request.body,
                    timeout,
                )
                if response.status < 400 and request.stream:
                    return response, None
                body = await response.aread()
        except TimeoutError:
            raise APITimeoutError(
                f"request timed out after {timeout.total}s (total timeout) on backend "
                f"{backend.name!r}",
                backend=backend.name,
            ) from None
        except APIError as exc:
            if exc.backend is None:
                exc.backend = backend.name
            raise
        if response.status < 400:
            return response, body
        headers = Headers(response.headers)
        raise error_from_status(
            response.status,
            body,
            headers,
            backend=backend.name,
            secrets=backend.secrets(),
            retry_after=parse_retry_after(headers),
        )

    async def _send(
        self, request: APIRequest
    ) -> tuple[Response, bytes | None, Backend, int, float]:
        self._check_usable()
        started = time.monotonic()
        used: list[Backend] = []

        async def attempt(number: int) -> tuple[Response, bytes | None]:
            backend = self._backends.select(request)
            used.append(backend)
            return await self._attempt(request, backend)

        response, body = await self._retry.call(attempt, max_retries=request.max_retries)
        return response, body, used[-1], len(used), started

    async def send(self, request: APIRequest) -> Reply:
        """Send a non-streamed request; return its 2xx reply, read whole.

        :raises APIStatusError: (a subclass) for an error status, after retries.
        :raises APIConnectionError: when no answer came, after retries.
        :raises PoolClosedError: when the pool is closed.
        """
        response, body, backend, attempts, started = await self._send(request)
        assert body is not None
        return Reply(
            body=body,
            status=response.status,
            headers=Headers(response.headers),
            backend=backend.name,
            attempts=attempts,
            elapsed=time.monotonic() - started,
            http_version=response.http_version.decode("ascii"),
        )

    async def open_stream(self, request: APIRequest) -> tuple[Response, ResponseMeta, Backend]:
        """Send a streamed request; return the response (head read, body not) and its metadata.

        The caller owns the response and must close it.
        """
        response, _, backend, attempts, started = await self._send(request)
        headers = Headers(response.headers)
        meta = ResponseMeta(
            raw=None,
            headers=headers,
            status_code=response.status,
            request_id=headers.get("x-request-id") or headers.get("apim-request-id"),
            backend=backend.name,
            attempts=attempts,
            elapsed=time.monotonic() - started,
            http_version=response.http_version.decode("ascii"),
        )
        return response, meta, backend

    # -- lifetime --------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every connection and stop background work. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._task_group.cancel_scope.cancel()
        await self._transport.aclose()


def _default_backend(settings: Settings) -> Backend:
    if settings.api_key is None:
        raise ConfigurationError(
            "no API key: pass open_pool(api_key=...) or set the OPENAI_API_KEY environment "
            "variable",
            setting="OPENAI_API_KEY",
        )
    return Backend(
        name="default",
        kind="openai",
        base_url=settings.base_url,
        api_key=settings.api_key,
        organization=settings.organization,
        project=settings.project,
        headers=settings.custom_headers,
    )


@contextlib.asynccontextmanager
async def open_pool(
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    organization: str | None = None,
    project: str | None = None,
    timeout: float | Timeout | NotGiven | None = NOT_GIVEN,
    max_retries: int | None = None,
    max_connections: int | None = None,
    max_keepalive_connections: int | None = None,
    keepalive_expiry: float | None = None,
    custom_headers: Mapping[str, str] | str | None = None,
    proxies: str | Mapping[str, str] | None = None,
    http2: bool | None = None,
    retry: RetryPolicy | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[Pool]:
    """Open a pool of connections and backends; close everything when the block ends.

    Works under asyncio and trio. Every argument left out (``None``) is read from the
    environment (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ... see the README), then defaults.

    :param api_key: the API key (``OPENAI_API_KEY``).
    :param base_url: the API root (``OPENAI_BASE_URL``), default ``https://api.openai.com/v1``.
    :param organization: sent as ``OpenAI-Organization`` (``OPENAI_ORG_ID``).
    :param project: sent as ``OpenAI-Project`` (``OPENAI_PROJECT_ID``).
    :param timeout: seconds for the whole request, or a :class:`Timeout` with connect, read,
        write, pool and total; ``None`` for no limit (``OPENAI_TIMEOUT``; default 600 s total,
        5 s to connect).
    :param max_retries: retries after a retryable failure (``OPENAI_MAX_RETRIES``, default 2).
    :param max_connections: connections open at once (``OPENAI_MAX_CONNECTIONS``, default 1000).
    :param max_keepalive_connections: idle connections kept (default: no cap).
    :param keepalive_expiry: seconds an idle connection is kept (default 5).
    :param custom_headers: headers sent with every request (``OPENAI_CUSTOM_HEADERS``).
    :param proxies: an ``http://`` or ``https://`` proxy URL (``OPENAI_PROXIES``).
    :param http2: negotiate HTTP/2 (needs ``pip install 'anyoai[http2]'``).
    :param retry: the full :class:`RetryPolicy`; ``max_retries`` overrides its count.
    :param ssl_context: TLS settings (default: certifi's CA bundle).
    :raises ConfigurationError: for a missing API key or a malformed setting, naming it.
    """
    explicit: dict[str, Any] = {
        "api_key": api_key,
        "base_url": base_url,
        "organization": organization,
        "project": project,
        "max_retries": max_retries,
        "max_connections": max_connections,
        "max_keepalive_connections": max_keepalive_connections,
        "keepalive_expiry": keepalive_expiry,
        "custom_headers": custom_headers,
        "proxies": proxies,
        "http2": http2,
    }
    settings = read_settings(explicit)
    if not isinstance(timeout, NotGiven):
        from attrs import evolve

        settings = evolve(settings, timeout=Timeout.coerce(timeout))
    backends = BackendPool([_default_backend(settings)])
    policy = retry if retry is not None else RetryPolicy()
    if max_retries is not None or retry is None:
        from attrs import evolve

        policy = evolve(policy, max_retries=settings.max_retries)

    from ._transport import Transport

    transport = Transport(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_keepalive_connections,
        keepalive_expiry=settings.keepalive_expiry,
        http2=settings.http2,
        proxy=settings.proxy.reveal() if settings.proxy else None,
        ssl_context=ssl_context,
    )
    body_error: BaseException | None = None
    try:
        async with anyio.create_task_group() as task_group:
            pool = Pool(
                settings=settings,
                backends=backends,
                transport=transport,
                retry=policy,
                task_group=task_group,
            )
            try:
                yield pool
            except BaseException as exc:
                body_error = exc
                raise
            finally:
                await pool.aclose()
    except BaseExceptionGroup as group:
        # the task group wraps the block's own exception; hand it back unwrapped
        if body_error is not None and list(group.exceptions) == [body_error]:
            raise body_error from None
        raise
    finally:
        await transport.aclose()
