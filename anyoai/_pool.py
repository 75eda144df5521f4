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
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

import anyio
import anyio.abc
import attrs

from ._backends import (
    DEFAULT_AZURE_API_VERSION,
    AzureBackend,
    Backend,
    BackendSpec,
    OpenAIBackend,
    unique_names,
)
from ._clock import Clock, default_clock
from ._compat import BaseExceptionGroup
from ._config import Settings, Timeout, read_settings
from ._dispatch import Dispatcher, RetryEvent
from ._exceptions import ConfigurationError, PoolClosedError
from ._exchange import Exchange
from ._limits import Governor, Limits, PoolLimits
from ._model import NOT_GIVEN, NotGiven
from ._request import APIRequest
from ._retry import RetryPolicy
from ._selection import BackendSelector, BackendStatus, FailoverPolicy, Strategy
from .resources.batches import Batches
from .resources.chat import Chat
from .resources.completions import Completions
from .resources.edits import Edits
from .resources.embeddings import Embeddings
from .resources.files import Files, Uploads
from .resources.models import Models
from .resources.moderations import Moderations
from .storage import Storage

if TYPE_CHECKING:
    import ssl

    from ._transport import Transport, TransportStatistics

__all__ = ["Pool", "open_pool"]

logger = logging.getLogger("anyoai")


class _Client:
    """The API's resources over a dispatcher; a :class:`Pool`, or a view of one backend."""

    _root: Pool

    def __init__(self, root: Pool | None, dispatcher: Dispatcher, only: str | None) -> None:
        self._root = root if root is not None else cast("Pool", self)
        self._dispatcher = dispatcher
        self._only = only
        self.chat = Chat(self)
        self.completions = Completions(self)
        self.embeddings = Embeddings(self)
        self.models = Models(self)
        self.moderations = Moderations(self)
        self.edits = Edits(self)
        self.files = Files(self)
        self.uploads = Uploads(self)
        self.batches = Batches(self)

    @property
    def raise_on_content_filter(self) -> bool:
        """Whether a ``content_filter`` finish reason raises :class:`ContentFilterError`."""
        return self._root._raise_on_content_filter

    @property
    def max_event_bytes(self) -> int:
        """The longest server-sent event a stream accepts (``open_pool(max_event_bytes=...)``)."""
        return self._root._settings.max_event_bytes

    async def send(self, request: APIRequest) -> Exchange:
        """Send a request; return its exchange: the 2xx response with its body read whole,
        or, for a streamed request, its head read and its body not. The caller of a stream
        owns the response and its slots: it must close the response and call
        :meth:`Exchange.finish`, as :class:`AsyncStream` does.

        :raises APIStatusError: (a subclass) for an error status, after retries.
        :raises APIConnectionError: when no answer came, after retries.
        :raises PoolClosedError: when the pool is closed.
        """
        self._root._check_usable()
        return await self._dispatcher.exchange(request, only=self._only)

    @property
    def clock(self) -> Clock:
        """What the pool's own waits run on: retry backoffs, 429 pauses, batch polls."""
        return self._dispatcher.clock

    @property
    def storage(self) -> Storage:
        """Object storage by URL (``s3://``, ``gs://``, ``az://``, ``minio://``, paths,
        ``memory://``), its stores cached per bucket: see :mod:`anyoai.storage`."""
        return self._root._storage

    def spawn(self, fn: Callable[[], Coroutine[Any, Any, object]], name: str) -> None:
        """Run *fn* in the pool's task group; it is cancelled when the pool closes."""
        self._root._check_usable()
        self._root._task_group.start_soon(fn, name=name)


class PoolView(_Client):
    """``pool["name"]`` or ``pool[0]``: the pool's resources, restricted to one backend.

    It shares everything with the pool (connections, limits, health); only the choice of
    backend differs.
    """

    def __init__(self, pool: Pool, backend: Backend) -> None:
        super().__init__(pool, pool._dispatcher, backend.name)
        self.backend = backend

    def __repr__(self) -> str:
        return f"<PoolView of {self.backend!r}>"


class Pool(_Client):
    """A pool of connections and backends, with the API's resources as attributes.

    Do not build it yourself: use :func:`open_pool`. Resources follow the official SDK's names:
    ``pool.chat.completions``, ``pool.completions``, ``pool.embeddings``, ``pool.models``,
    ``pool.moderations`` and the legacy ``pool.edits``. ``pool["az"]`` and ``pool[0]`` give a
    view restricted to one backend.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        dispatcher: Dispatcher,
        task_group: anyio.abc.TaskGroup,
        raise_on_content_filter: bool = True,
        storage: Storage | None = None,
    ) -> None:
        self._storage = storage if storage is not None else Storage()
        super().__init__(None, dispatcher, None)
        self._settings = settings
        self._task_group = task_group
        self._closed = False
        self._thread = threading.get_ident()
        self._raise_on_content_filter = raise_on_content_filter
        self.limits = PoolLimits(dispatcher.governor)
        #: tokens and cost since the pool opened, per backend and per model (``reset()``-able)
        self.usage = dispatcher.usage

    # -- backends --------------------------------------------------------------------------

    def __getitem__(self, key: int | str) -> PoolView:
        """A view of the pool restricted to one backend, by name or position.

        :raises KeyError: if there is no such backend (the message lists them).
        """
        return PoolView(self, self._dispatcher.backends[key])

    @property
    def backends(self) -> tuple[BackendStatus, ...]:
        """Each backend's status: state, in flight, requests, failures, cooldown, latency,
        tokens used (``status.backend`` is the backend itself)."""
        return self._dispatcher.backends.status()

    def status(self) -> tuple[BackendStatus, ...]:
        """Each backend's state (``healthy``, ``cooldown``, ``open``, ``half-open``) and why
        (``status.reason``: the failures that took it down, the probe in flight), with its
        traffic and latency; the same snapshots as :attr:`backends`."""
        return self._dispatcher.backends.status()

    @property
    def current(self) -> Backend:
        """The backend round robin would pick next (the seed library's current client)."""
        return self._dispatcher.backends.current

    def rotate(self) -> Backend:
        """Move round robin on by one backend; return the new current one."""
        return self._dispatcher.backends.rotate()

    # -- introspection ---------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        """The resolved settings (the API key masked in its repr)."""
        return self._settings

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
        backends = ", ".join(repr(b) for b in self._dispatcher.backends.backends)
        return f"<Pool {state} backends=[{backends}] {self.transport!r}>"

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

    # -- lifetime --------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every connection and stop background work. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._task_group.cancel_scope.cancel()
        await self._dispatcher.transport.aclose()


def _backend_specs(settings: Settings, explicit: bool) -> list[BackendSpec]:
    """The backends from the settings: OpenAI (``"default"``) and Azure (``"az"``)."""
    specs: list[BackendSpec] = []
    if settings.api_key is not None:
        specs.append(
            OpenAIBackend(
                name="default",
                base_url=settings.base_url,
                api_key=settings.api_key.reveal(),
                organization=settings.organization,
                project=settings.project,
                headers=settings.custom_headers,
            )
        )
    if settings.azure_endpoint and not explicit:
        specs.append(_azure_from_settings(settings))
    return specs


def _azure_from_settings(settings: Settings) -> AzureBackend:
    key = settings.azure_api_key.reveal() if settings.azure_api_key else None
    token = settings.azure_ad_token.reveal() if settings.azure_ad_token else None
    if key is None and token is None:
        raise ConfigurationError(
            "AZURE_OPENAI_ENDPOINT is set but neither AZURE_OPENAI_API_KEY nor "
            "AZURE_OPENAI_AD_TOKEN is",
            setting="AZURE_OPENAI_API_KEY",
        )
    assert settings.azure_endpoint is not None
    return AzureBackend(
        name="az",
        endpoint=settings.azure_endpoint,
        api_version=settings.azure_api_version or DEFAULT_AZURE_API_VERSION,
        api_key=key,
        azure_ad_token=None if key else token,
        deployments=settings.azure_deployments,
        headers=settings.custom_headers,
    )


def _fill_from_settings(spec: BackendSpec, settings: Settings) -> BackendSpec:
    """Credentials a spec leaves out come from the environment, as the official SDK does."""
    if isinstance(spec, OpenAIBackend) and spec.api_key is None and settings.api_key:
        return attrs.evolve(spec, api_key=settings.api_key.reveal())
    if (
        isinstance(spec, AzureBackend)
        and spec.api_key is None
        and spec.azure_ad_token is None
        and spec.azure_ad_token_provider is None
    ):
        if settings.azure_api_key:
            return attrs.evolve(spec, api_key=settings.azure_api_key.reveal())
        if settings.azure_ad_token:
            return attrs.evolve(spec, azure_ad_token=settings.azure_ad_token.reveal())
    return spec


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
    backends: Sequence[BackendSpec] | None = None,
    strategy: Literal["round_robin", "weighted"] | Strategy = "round_robin",
    prioritize: str | None = None,
    failover: FailoverPolicy | None = None,
    raise_on_content_filter: bool = True,
    ssl_context: ssl.SSLContext | None = None,
    storage: Storage | Mapping[str, Mapping[str, Any]] | None = None,
    clock: Clock | None = None,
    max_response_bytes: int | None = None,
    max_event_bytes: int | None = None,
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
    :param backends: :class:`OpenAIBackend`, :class:`AzureBackend` and
        :class:`CompatibleBackend` specs. Without it, the backends come from the arguments
        and the environment: OpenAI (``OPENAI_API_KEY``, named ``"default"``) and Azure
        (``AZURE_OPENAI_ENDPOINT``, named ``"az"``).
    :param strategy: how a backend is chosen among the healthy ones of the best priority:
        ``"round_robin"``, ``"weighted"`` or a callable.
    :param prioritize: ``"azure"`` (or ``"openai"``, ``"compatible"``): backends of that kind
        first, the others when they are down (the seed library's option).
    :param failover: cooldown and circuit-breaker settings (:class:`FailoverPolicy`).
    :param raise_on_content_filter: raise :class:`ContentFilterError` when an answer ends with
        ``finish_reason="content_filter"`` (the partial result is on the exception).
    :param ssl_context: TLS settings (default: certifi's CA bundle).
    :param storage: ``pool.storage``: a :class:`~anyoai.storage.Storage`, or its options per
        scheme or bucket (``{"s3": {"region": "eu-west-1"}, "minio": {"endpoint": ...}}``);
        by default credentials come from the environment.
    :param clock: what anyoai's own waits run on (retry backoffs, 429 pauses, batch polls):
        real time by default; :func:`anyoai.testing.set_testing` makes the default an
        :class:`~anyoai.testing.InstantClock`, for test suites.
    :param max_response_bytes: the longest response body read whole (not streamed); a longer
        one raises :class:`ResponseValidationError` and its connection is closed (512 MiB).
    :param max_event_bytes: the longest server-sent event of a stream; a longer one raises
        :class:`ResponseValidationError` and the stream's connection is closed (16 MiB).
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
        "max_response_bytes": max_response_bytes,
        "max_event_bytes": max_event_bytes,
    }
    settings = read_settings(explicit)
    if not isinstance(timeout, NotGiven):
        settings = attrs.evolve(settings, timeout=Timeout.coerce(timeout))
    specs = (
        [_fill_from_settings(spec, settings) for spec in backends]
        if backends is not None
        else _backend_specs(settings, explicit=api_key is not None or base_url is not None)
    )
    resolved = [Backend.from_spec(s, n) for s, n in zip(specs, unique_names(specs), strict=True)]
    pool_backends = BackendSelector(
        resolved, strategy=strategy, prioritize=prioritize, failover=failover
    )
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
    clock = clock if clock is not None else default_clock()
    if rate_limit_period <= 0:
        raise ConfigurationError("rate_limit_period must be > 0", setting="rate_limit_period")
    governor = Governor(
        limits=pool_limits,
        backend_limits={b.name: b.limits for b in resolved if b.limits is not None},
        model_limits=model_limits,
        period=rate_limit_period,
        clock=clock,
    )

    from ._transport import Transport

    transport = Transport(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_keepalive_connections,
        keepalive_expiry=settings.keepalive_expiry,
        http2=settings.http2,
        proxy=settings.proxy.reveal() if settings.proxy else None,
        ssl_context=ssl_context,
        max_response_bytes=settings.max_response_bytes,
    )
    dispatcher = Dispatcher(
        backends=pool_backends,
        transport=transport,
        retry=policy,
        governor=governor,
        timeout=settings.timeout,
        on_retry=on_retry,
        clock=clock,
    )
    body_error: BaseException | None = None
    try:
        async with anyio.create_task_group() as task_group:
            pool = Pool(
                settings=settings,
                dispatcher=dispatcher,
                task_group=task_group,
                raise_on_content_filter=raise_on_content_filter,
                storage=storage
                if isinstance(storage, Storage) or storage is None
                else Storage(storage),
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
