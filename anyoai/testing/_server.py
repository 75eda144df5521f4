"""Running the fake OpenAI server: :class:`FakeServer` and :func:`run_in_thread`.

:class:`FakeServer` holds the server's configuration (the app, the rate limiter, the scripted
faults), binds on loopback, accepts connections in its own anyio task group and hands each to
its :class:`~anyoai.testing._http.HTTPHandler`; it can go down and come up again on the same
port. :func:`run_in_thread` runs one in a background thread, with its own event loop, for
blocking tests.
"""

from __future__ import annotations

import contextlib
import errno
import logging
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import ClassVar, Final, overload

import anyio
import anyio.abc
import anyio.from_thread
import attrs

from .._compat import Self, TypedDict, Unpack
from ._azure import DEFAULT_DEPLOYMENTS, AzureApp, AzureConfig
from ._faults import Fault, FaultQueue, is_number
from ._framework import DEFAULT_MODELS, AppConfig, FakeApp, RecordedRequest
from ._http import HTTPHandler
from ._ratelimit import Limiter, RateLimitStats
from ._state import StoredBatch, StoredFile, StoredUpload
from ._table import DEFAULT_ROUTES

__all__ = ["DEFAULT_MAX_FILE_BYTES", "FakeServer", "run_in_thread"]

logger = logging.getLogger("anyoai.testing")

#: The largest file ``POST /v1/files`` accepts unless told otherwise: 512 MiB.
DEFAULT_MAX_FILE_BYTES: Final = 512 * 1024 * 1024
# come_up: how long to retry binding the port while the OS still holds it
_REBIND_TIMEOUT: Final = 5.0
_REBIND_INTERVAL: Final = 0.02


def _check_limit(name: str, value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be an integer >= 1 or None, not {value!r}")


@attrs.define(eq=False)
class _Listening:
    """One period of listening: from entry (or :meth:`FakeServer.come_up`) to going down."""

    listener: anyio.abc.Listener[anyio.abc.SocketStream]
    sockets: list[anyio.abc.SocketListener]
    generation: int
    scope: anyio.CancelScope = attrs.field(factory=anyio.CancelScope)
    stopped: anyio.Event = attrs.field(factory=anyio.Event)


class _HTTPSetting:
    """A read-write attribute of :class:`FakeServer` kept by its HTTP handler: the handler's
    attribute of the same name, which it reads at each answer."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc

    def __set_name__(self, owner: type[FakeServer], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, server: None, owner: type[FakeServer]) -> Self: ...
    @overload
    def __get__(self, server: FakeServer, owner: type[FakeServer]) -> float: ...
    def __get__(self, server: FakeServer | None, owner: type[FakeServer]) -> Self | float:
        if server is None:
            return self
        value: float = getattr(server._http, self._name)
        return value

    def __set__(self, server: FakeServer, value: float) -> None:
        setattr(server._http, self._name, value)


class FakeServer:
    """A fake OpenAI API on a real HTTP/1.1 socket, for tests.

    ::

        async with FakeServer() as server:
            async with anyoai.open_pool(base_url=server.url, api_key="sk-test") as pool:
                ...
            assert server.requests[0].json["model"] == "gpt-4o-mini"

    Use it as an async context manager (enter and exit it in the same task): it binds on entry,
    serves in its own anyio task group (asyncio or trio), and on exit stops accepting, closes
    every connection and cancels every handler. :func:`run_in_thread` serves blocking tests.

    **Rate limits**, when *rpm* or *tpm* is set, work as OpenAI's: one pair of token buckets
    for the whole server (one organisation, ``org-fake``), each holding the limit, starting
    full and refilling continuously at ``limit / rate_limit_period`` per second. A request the
    endpoint would answer (not a 400/401/404 of the endpoint, not a fault that replaces the
    answer) takes 1 request and its token charge: its prompt tokens as ``usage`` counts them
    (words), plus for chat ``max_completion_tokens`` or ``max_tokens`` times ``n``, and for
    completions ``max_tokens`` times ``n`` times the number of prompts; embeddings and
    moderations cost their input words, ``GET /models`` nothing. If a bucket lacks it the
    answer is a 429 ``rate_limit_exceeded`` (type ``requests`` or ``tokens``) with
    ``retry-after`` (seconds, up to 3 decimals) and ``retry-after-ms``: the wait until both
    buckets hold enough; nothing is taken. A charge above the whole token limit gets the 429
    "Request too large", without retry headers. The reserved completion tokens the answer
    does not use are refunded when it goes out. Every response carries
    ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` for the limits that are set.
    :meth:`rate_limit_stats` tells what was let through. Faults come first, as without limits:
    a fault's 429 is the fault's.

    While an answer is delayed (:attr:`Fault.latency`, *latency*) or streamed, the server
    watches the connection: when the client closes it (or only shuts down its sending side)
    the answer is abandoned and the connection closed. Disconnections are logged at debug
    level on the ``anyoai.testing`` logger, never as errors; an endpoint that raises is logged
    with its traceback and answered with a 500.

    **Azure OpenAI**: with *azure*, the server is an Azure OpenAI resource instead
    (:mod:`anyoai.testing._azure`): :attr:`url` is the resource endpoint
    ``http://127.0.0.1:PORT``, the endpoints are ``/openai/deployments/{deployment}/...``
    (chat completions, completions, embeddings) and ``/openai/models``, every request needs the
    ``api-version`` query parameter, the key goes in an ``api-key`` header, and answers carry
    Azure's content-filter results and its ``apim-request-id`` and ``x-ms-region`` headers.
    Rate limits, faults, latency and recording work as for OpenAI.

    **Files, uploads and batches** (:mod:`anyoai.testing._files`,
    :mod:`anyoai.testing._batches`) keep their objects for the server's lifetime: read them
    with :attr:`files`, :attr:`uploads` and :attr:`batches`. A batch moves one step along its
    lifecycle at every ``GET /v1/batches/{id}`` and runs its requests through the server's own
    endpoints; ``metadata={"fake_outcome": "expired"}`` (or ``"failed"``) scripts its end.

    **Outages**: :meth:`go_down` stops listening and drops every connection (new ones are
    refused) until :meth:`come_up` listens again on the same port, so a client's failover and
    recovery can be tested. Recorded requests, pending faults and the rate limits are kept.

    :param host: the address to listen on.
    :param port: the port; 0 picks a free one (read :attr:`port` or :attr:`url` after entry).
    :param api_key: when set, every request must carry ``Authorization: Bearer <api_key>``,
        else 401 ``invalid_api_key``. With *azure*: an ``api-key: <api_key>`` header (or the
        *ad_token*), else Azure's 401.
    :param models: the model ids ``GET /v1/models`` lists (:attr:`DEFAULT_MODELS` by default).
    :param embedding_dimensions: the vector length of embeddings without ``dimensions``.
    :param stream_chunk_delay: seconds to wait between the events of a stream.
    :param rpm: requests per *rate_limit_period*, or ``None``: no request limit.
    :param tpm: tokens per *rate_limit_period*, or ``None``: no token limit.
    :param rate_limit_period: the "minute" of *rpm* and *tpm*, in seconds; shorter to run tests
        and benchmarks time-scaled (1.0: limits per second).
    :param latency: seconds every answer waits after the rate-limit decision (after a fault's
        own latency), as a :attr:`Fault.latency` does: cancelled when the client leaves.
    :param azure: answer as an Azure OpenAI resource instead of the OpenAI API.
    :param api_version: with *azure*, the only ``api-version`` accepted (others get a 400);
        ``None``: any, but one is always required (else 404).
    :param deployments: with *azure*, deployment name -> model name
        (:attr:`DEFAULT_DEPLOYMENTS` by default). Answers name the deployment's model.
    :param ad_token: with *azure*, an Azure AD (Entra ID) token accepted as
        ``Authorization: Bearer <ad_token>``, instead of or besides *api_key*.
    :param max_file_bytes: the largest file ``POST /v1/files`` accepts (512 MiB by default);
        a larger one gets a 400 that names the limit.

    :ivar host: the address it listens on.
    :ivar port: the port it listens on (the requested one until entry).
    :ivar requests: every request received, in order of arrival. Appended from the server's
        thread under a lock: read it once the requests you care about have been answered.
    :ivar app: the endpoints;
        :meth:`FakeApp.add_route <anyoai.testing._framework.FakeApp.add_route>` adds one.
    """

    #: The models listed when none are given.
    DEFAULT_MODELS: ClassVar[tuple[str, ...]] = DEFAULT_MODELS
    #: The deployments (name -> model) of an Azure server given none.
    DEFAULT_DEPLOYMENTS: ClassVar[Mapping[str, str]] = DEFAULT_DEPLOYMENTS

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        models: Sequence[str] = DEFAULT_MODELS,
        embedding_dimensions: int = 16,
        stream_chunk_delay: float = 0.0,
        rpm: int | None = None,
        tpm: int | None = None,
        rate_limit_period: float = 60.0,
        latency: float = 0.0,
        azure: bool = False,
        api_version: str | None = None,
        deployments: Mapping[str, str] | None = None,
        ad_token: str | None = None,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        if not azure and (api_version, deployments, ad_token) != (None, None, None):
            raise ValueError("api_version, deployments and ad_token need azure=True")
        if isinstance(models, str):
            raise TypeError("models must be a sequence of model ids, not a string")
        if isinstance(embedding_dimensions, bool) or embedding_dimensions < 1:
            raise ValueError("embedding_dimensions must be an integer >= 1")
        if not is_number(stream_chunk_delay):
            raise ValueError("stream_chunk_delay must be a number of seconds >= 0")
        _check_limit("rpm", rpm)
        _check_limit("tpm", tpm)
        if not is_number(rate_limit_period) or rate_limit_period <= 0:
            raise ValueError("rate_limit_period must be a number of seconds > 0")
        if not is_number(latency):
            raise ValueError("latency must be a number of seconds >= 0")
        if isinstance(max_file_bytes, bool) or not isinstance(max_file_bytes, int):
            raise TypeError("max_file_bytes must be an integer")
        if max_file_bytes < 1:
            raise ValueError("max_file_bytes must be >= 1")
        self.host = host
        self.port = port
        self._limiter = Limiter(rpm=rpm, tpm=tpm, period=float(rate_limit_period))
        self._faults = FaultQueue()
        self.requests: list[RecordedRequest] = []
        self.azure = bool(azure)
        config = AppConfig(
            models=tuple(models),
            embedding_dimensions=embedding_dimensions,
            api_key=api_key,
            max_file_bytes=max_file_bytes,
        )
        self.app: FakeApp
        if self.azure:
            settings = AzureConfig(
                api_version=api_version,
                deployments=DEFAULT_DEPLOYMENTS if deployments is None else deployments,
                api_key=api_key,
                ad_token=ad_token,
            )
            self.app = AzureApp(config, settings)
        else:
            self.app = FakeApp(config, DEFAULT_ROUTES)
        self._http = HTTPHandler(
            app=self.app,
            limiter=self._limiter,
            faults=self._faults,
            requests=self.requests,
            latency=float(latency),
            stream_chunk_delay=float(stream_chunk_delay),
        )
        self._requested_port = port
        self._task_group: anyio.abc.TaskGroup | None = None
        self._listening: _Listening | None = None
        self._generation = 0
        self._portal: anyio.from_thread.BlockingPortal | None = None

    def __repr__(self) -> str:
        state = "stopped" if self._task_group is None else "serving" if self.is_up else "down"
        kind = " azure" if self.azure else ""
        return f"<FakeServer{kind} {self.url} {state}>"

    @property
    def endpoint(self) -> str:
        """The server's root URL, ``http://127.0.0.1:PORT`` (an Azure resource endpoint)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The base URL a client uses.

        ``http://127.0.0.1:PORT/v1``; for an Azure server the resource endpoint,
        ``http://127.0.0.1:PORT`` (the same as :attr:`endpoint`).
        """
        return self.endpoint if self.azure else self.endpoint + "/v1"

    latency = _HTTPSetting(
        "Seconds every answer waits after the rate-limit decision (the *latency* argument)."
    )
    stream_chunk_delay = _HTTPSetting(
        "Seconds to wait between the events of a stream (the *stream_chunk_delay* argument)."
    )

    @property
    def is_up(self) -> bool:
        """Whether the server is running and listening (entered, and not :meth:`go_down`)."""
        return self._task_group is not None and self._listening is not None

    @property
    def open_connections(self) -> int:
        """How many client connections are open right now."""
        return self._http.open_connections

    def add_fault(
        self, fault: Fault, *, path: str | None = None, method: str | None = None
    ) -> None:
        """Script *fault* for the next ``fault.times`` requests that match.

        Faults are consumed first in, first out: a request takes the oldest pending fault it
        matches. *path* matches the request path exactly, with or without the ``/v1`` prefix
        (``"/chat/completions"`` or ``"/v1/chat/completions"``), or for Azure with or without
        the ``/openai`` or ``/openai/deployments/{any deployment}`` prefix
        (``"/chat/completions"`` matches every deployment's chat completions, ``"/models"``
        ``/openai/models``); *method* matches case-insensitively; ``None`` matches anything. An
        ``x-fake-fault`` header takes precedence (and consumes nothing). Safe to call from any
        thread.
        """
        self._faults.add(fault, path=path, method=method)

    @property
    def files(self) -> Mapping[str, StoredFile]:
        """The files the server holds, by id, oldest first: a read-only snapshot.

        Uploaded ones, those completed uploads made, and batch output and error files (purpose
        ``batch_output``); each with its ``data``, ``purpose`` and ``filename``. Safe to read
        from any thread.
        """
        return self.app.state.files

    @property
    def uploads(self) -> Mapping[str, StoredUpload]:
        """The uploads, by id, oldest first (with ``status``, ``parts``, ``file``): a snapshot."""
        return self.app.state.uploads

    @property
    def batches(self) -> Mapping[str, StoredBatch]:
        """The batches, by id, oldest first, as they are now: a read-only snapshot.

        Reading them does not move them on (only ``GET /v1/batches/{id}`` does).
        """
        return self.app.state.batches

    def clear(self) -> None:
        """Forget the recorded requests, the pending faults and the rate-limit statistics.

        Ids keep counting up, the rate-limit buckets keep their levels, and the files, uploads
        and batches stay.
        """
        self._http.clear_requests()
        self._faults.clear()
        self._limiter.clear_stats()

    def rate_limit_stats(self) -> RateLimitStats:
        """What the rate limiter let through and refused since the start (or :meth:`clear`).

        Counted even without limits. ``events`` holds ``(time, 1, net tokens)`` per accepted
        request, time on the server's clock (``anyio.current_time()`` in its event loop), so a
        test can check how much of a quota any window held
        (:meth:`~anyoai.testing.RateLimitStats.peak`). Safe to call from any thread.
        """
        return self._limiter.stats()

    async def close_idle_connections(self) -> int:
        """Close every keep-alive connection that sits idle between requests; return how many.

        It returns once those sockets are closed, so a client that reuses one next finds it
        closed (a stale pooled connection). Call it from the server's event loop.
        """
        return await self._http.close_connections(idle_only=True)

    # ---------------------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> FakeServer:
        if self._task_group is not None:
            raise RuntimeError("this FakeServer is already running")
        listener, sockets = await self._bind(self._requested_port)
        try:
            self.port = sockets[0].extra(anyio.abc.SocketAttribute.local_port)
            task_group = anyio.create_task_group()
            await task_group.__aenter__()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await listener.aclose()
            raise
        self._task_group = task_group
        self._listen(listener, sockets)
        logger.debug("fake server listening on %s", self.url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task_group, listening = self._task_group, self._listening
        self._task_group = self._listening = None
        if task_group is None:
            return
        task_group.cancel_scope.cancel()
        # hand the task group a cancellation, never another exception: that would come back
        # wrapped in an exception group instead of propagating as it is
        passed = exc if isinstance(exc, anyio.get_cancelled_exc_class()) else None
        try:
            await task_group.__aexit__(
                type(passed) if passed is not None else None,
                passed,
                passed.__traceback__ if passed is not None else None,
            )
        finally:
            if listening is not None:
                with anyio.CancelScope(shield=True):
                    await listening.listener.aclose()
            logger.debug("fake server on %s stopped", self.url)

    async def go_down(self) -> None:
        """Stop listening and close every connection, as a crashed server would.

        New connections are refused (``ECONNREFUSED``) until :meth:`come_up`; requests in
        flight are dropped (their clients see the connection close without an answer, or in
        the middle of one), idle keep-alive connections closed. :attr:`port`, the recorded
        requests, the pending faults and the rate limits are kept. It returns once the port is
        closed and every connection is. Does nothing if the server is already down.

        Await it in the server's event loop; from another thread (:func:`run_in_thread`) call
        :meth:`go_down_blocking`.
        """
        if self._task_group is None:
            raise RuntimeError("this FakeServer is not running")
        listening = self._listening
        if listening is None:
            return
        self._listening = None
        self._generation += 1  # connections accepted before this, not yet served, are dropped
        listening.scope.cancel()
        with anyio.CancelScope(shield=True):
            await listening.stopped.wait()
            await listening.listener.aclose()
            await self._http.close_connections()
        logger.debug("fake server on %s went down", self.url)

    async def come_up(self) -> None:
        """Listen again on the same :attr:`port` after :meth:`go_down`.

        Binding is retried for a few seconds while the OS still holds the port (``OSError``
        if it is still taken then, by another program for instance). Does nothing if the server
        is up. Await it in the server's event loop; from another thread (:func:`run_in_thread`)
        call :meth:`come_up_blocking`.
        """
        if self._task_group is None:
            raise RuntimeError("this FakeServer is not running")
        if self._listening is not None:
            return
        listener, sockets = await self._bind(self.port, retry=True)
        if not self._is_down():  # stopped, or came up in another task, meanwhile
            await listener.aclose()
            return
        self._listen(listener, sockets)
        logger.debug("fake server on %s came up", self.url)

    def go_down_blocking(self) -> None:
        """:meth:`go_down`, from the thread that entered :func:`run_in_thread` (or any other)."""
        self._blocking_portal().call(self.go_down)

    def come_up_blocking(self) -> None:
        """:meth:`come_up`, from the thread that entered :func:`run_in_thread` (or any other)."""
        self._blocking_portal().call(self.come_up)

    def _is_down(self) -> bool:
        return self._task_group is not None and self._listening is None

    def _blocking_portal(self) -> anyio.from_thread.BlockingPortal:
        portal = self._portal
        if portal is None:
            raise RuntimeError(
                "only a server started with run_in_thread() has blocking controls: "
                "await go_down() / come_up() in the server's event loop instead"
            )
        return portal

    async def _bind(
        self, port: int, *, retry: bool = False
    ) -> tuple[anyio.abc.Listener[anyio.abc.SocketStream], list[anyio.abc.SocketListener]]:
        deadline = anyio.current_time() + _REBIND_TIMEOUT
        while True:
            try:
                listener = await anyio.create_tcp_listener(local_host=self.host, local_port=port)
                break
            except OSError as exc:
                if not retry or exc.errno != errno.EADDRINUSE or anyio.current_time() > deadline:
                    raise
                logger.debug("fake server: port %d still taken, retrying", port)
                await anyio.sleep(_REBIND_INTERVAL)
        sockets = [
            inner for inner in listener.listeners if isinstance(inner, anyio.abc.SocketListener)
        ]
        if not sockets:
            with anyio.CancelScope(shield=True):
                await listener.aclose()
            raise RuntimeError(f"could not listen on {self.host}")
        return listener, sockets

    def _listen(
        self,
        listener: anyio.abc.Listener[anyio.abc.SocketStream],
        sockets: list[anyio.abc.SocketListener],
    ) -> None:
        assert self._task_group is not None
        listening = _Listening(listener=listener, sockets=sockets, generation=self._generation)
        self._listening = listening
        self._task_group.start_soon(self._accept_all, listening, self._task_group)

    async def _accept_all(self, listening: _Listening, task_group: anyio.abc.TaskGroup) -> None:
        try:
            with listening.scope:
                async with anyio.create_task_group() as accepting:
                    for socket_listener in listening.sockets:
                        accepting.start_soon(
                            self._accept_loop, socket_listener, task_group, listening.generation
                        )
        finally:
            listening.stopped.set()

    async def _accept_loop(
        self,
        listener: anyio.abc.SocketListener,
        task_group: anyio.abc.TaskGroup,
        generation: int,
    ) -> None:
        while True:
            try:
                stream = await listener.accept()
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return
            except OSError as exc:  # e.g. too many open files: wait for some to close
                logger.debug("fake server: accept failed: %r", exc)
                await anyio.sleep(0.01)
                continue
            task_group.start_soon(self._connection, stream, generation)

    async def _connection(self, stream: anyio.abc.SocketStream, generation: int) -> None:
        if generation != self._generation:  # accepted just before the server went down
            await anyio.aclose_forcefully(stream)
            return
        await self._http.serve(stream)


class _ServerOptions(TypedDict, total=False):
    host: str
    port: int
    api_key: str | None
    models: Sequence[str]
    embedding_dimensions: int
    stream_chunk_delay: float
    rpm: int | None
    tpm: int | None
    rate_limit_period: float
    latency: float
    azure: bool
    api_version: str | None
    deployments: Mapping[str, str] | None
    ad_token: str | None
    max_file_bytes: int


def run_in_thread(
    **kwargs: Unpack[_ServerOptions],
) -> contextlib.AbstractContextManager[FakeServer]:
    """Run a :class:`FakeServer` in a background thread, for blocking tests.

    ::

        with run_in_thread(api_key="sk-test") as server:
            urllib.request.urlopen(server.url + "/models")

    The keyword arguments are :class:`FakeServer`'s. The thread runs its own event loop (anyio,
    asyncio backend); entering waits until the server listens, leaving stops it and joins the
    thread. :meth:`FakeServer.add_fault`, :meth:`FakeServer.clear`,
    :meth:`FakeServer.rate_limit_stats`, :attr:`FakeServer.requests`, :attr:`FakeServer.files`,
    :attr:`FakeServer.uploads` and :attr:`FakeServer.batches` are safe to use from the calling
    thread; so are :meth:`FakeServer.go_down_blocking` and
    :meth:`FakeServer.come_up_blocking`, which run :meth:`FakeServer.go_down` and
    :meth:`FakeServer.come_up` in the server's thread and wait for them.
    """
    return _serve_in_thread(FakeServer(**kwargs))


@contextlib.contextmanager
def _serve_in_thread(server: FakeServer) -> Iterator[FakeServer]:
    with (
        anyio.from_thread.start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(server) as running,
    ):
        running._portal = portal
        try:
            yield running
        finally:
            running._portal = None
