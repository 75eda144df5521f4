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
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import attrs

from ._backends import Backend, BackendPool
from ._compat import BaseExceptionGroup
from ._config import Settings, Timeout, read_settings
from ._dispatch import Dispatcher, Exchange, RetryEvent
from ._errors import ConfigurationError, PoolClosedError
from ._headers import Headers
from ._limits import Governor, Limits, PoolLimits
from ._request import APIRequest, Reply
from ._retry import RetryPolicy
from .resources.chat import Chat
from .resources.completions import Completions
from .resources.edits import Edits
from .resources.embeddings import Embeddings
from .resources.models import Models
from .resources.moderations import Moderations
from .types._base import NOT_GIVEN, NotGiven

if TYPE_CHECKING:
    import ssl

    from ._transport import Transport, TransportStatistics

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
        dispatcher: Dispatcher,
        task_group: anyio.abc.TaskGroup,
    ) -> None:
        self._settings = settings
        self._dispatcher = dispatcher
        self._task_group = task_group
        self._closed = False
        self._thread = threading.get_ident()
        self.limits = PoolLimits(dispatcher.governor)
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
        return self._dispatcher.backends.backends

    @property
    def transport(self) -> Transport:
        """The transport; :meth:`~anyoai._transport.Transport.statistics` shows its connections."""
        return self._dispatcher.transport

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry policy every request of this pool follows."""
        return self._dispatcher.retry

    @property
    def closed(self) -> bool:
        """Whether the pool's ``async with`` block has ended."""
        return self._closed

    def statistics(self) -> TransportStatistics:
        """The transport's connection statistics."""
        return self._dispatcher.transport.statistics()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        backends = ", ".join(repr(b) for b in self.backends)
        return f"<Pool {state} backends=[{backends}] {self.transport!r}>"

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

    async def send(self, request: APIRequest) -> Reply:
        """Send a non-streamed request; return its 2xx reply, read whole.

        :raises APIStatusError: (a subclass) for an error status, after retries.
        :raises APIConnectionError: when no answer came, after retries.
        :raises PoolClosedError: when the pool is closed.
        """
        self._check_usable()
        exchange = await self._dispatcher.exchange(request)
        assert exchange.body is not None
        return Reply(
            body=exchange.body,
            status=exchange.response.status,
            headers=Headers(exchange.response.headers),
            backend=exchange.backend.name,
            attempts=exchange.attempts,
            elapsed=time.monotonic() - exchange.started,
            http_version=exchange.response.http_version.decode("ascii"),
            reservation=exchange.reservation,
        )

    async def open_stream(self, request: APIRequest) -> Exchange:
        """Send a streamed request; return the exchange, its response head read, body not.

        The caller owns the response and its slots: it must close the response and call
        :meth:`Exchange.finish`, as :class:`AsyncStream` does.
        """
        self._check_usable()
        return await self._dispatcher.exchange(request)

    # -- lifetime --------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every connection and stop background work. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._task_group.cancel_scope.cancel()
        await self._dispatcher.transport.aclose()


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
    limits: Limits | None = None,
    model_limits: Mapping[str, Limits] | None = None,
    rate_limit_period: float = 60.0,
    on_retry: Callable[[RetryEvent], object] | None = None,
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
    :param limits: :class:`Limits` for the pool: ``max_in_flight`` requests at once (default
        ``max_connections``), ``rpm`` and ``tpm`` (``OPENAI_RPM_LIMIT``, ``OPENAI_TPM_LIMIT``).
        Without rpm/tpm, limits are learned from the server's ``x-ratelimit-*`` headers.
    :param model_limits: rpm/tpm for individual models, e.g. ``{"gpt-4o": Limits(tpm=30_000)}``.
    :param rate_limit_period: the rate window in seconds (60: limits are per minute); shorter
        only to time-scale tests and benchmarks.
    :param on_retry: called with a :class:`RetryEvent` before each retry wait (for metrics).
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
        settings = attrs.evolve(settings, timeout=Timeout.coerce(timeout))
    backends = BackendPool([_default_backend(settings)])
    policy = retry if retry is not None else RetryPolicy()
    if max_retries is not None or retry is None:
        policy = attrs.evolve(policy, max_retries=settings.max_retries)
    pool_limits = limits or Limits()
    pool_limits = attrs.evolve(
        pool_limits,
        max_in_flight=pool_limits.max_in_flight or settings.max_connections,
        rpm=pool_limits.rpm or settings.rpm,
        tpm=pool_limits.tpm or settings.tpm,
    )
    if rate_limit_period <= 0:
        raise ConfigurationError("rate_limit_period must be > 0", setting="rate_limit_period")
    governor = Governor(limits=pool_limits, model_limits=model_limits, period=rate_limit_period)

    from ._transport import Transport

    transport = Transport(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_keepalive_connections,
        keepalive_expiry=settings.keepalive_expiry,
        http2=settings.http2,
        proxy=settings.proxy.reveal() if settings.proxy else None,
        ssl_context=ssl_context,
    )
    dispatcher = Dispatcher(
        backends=backends,
        transport=transport,
        retry=policy,
        governor=governor,
        timeout=settings.timeout,
        on_retry=on_retry,
    )
    body_error: BaseException | None = None
    try:
        async with anyio.create_task_group() as task_group:
            pool = Pool(settings=settings, dispatcher=dispatcher, task_group=task_group)
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
