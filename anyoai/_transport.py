"""Connections over httpcore: checkout, keep-alive, send a request, hand back a response.

httpcore's ``AsyncConnectionPool`` re-scans every connection on every request, so its cost grows
with the number of connections (see ``docs/architecture.md``). This transport manages httpcore's
connection objects itself:

- an idle list per origin, used last-in first-out, so checkout is O(1);
- a staleness check (keep-alive expiry, and a socket poll for a server-side close) only at
  checkout;
- one transparent retry, on a fresh connection, when a reused connection turns out to have been
  closed by the server while idle, and only when the request provably never reached it whole
  (the connection refused it before a byte was written, or a write failed), or the method is
  safe (``GET``, ``HEAD``, ``OPTIONS``); otherwise the failure goes to the retry policy, which
  resends with the same ``Idempotency-Key``, or to the caller when ``max_retries=0``;
- at most ``max_connections`` connections; callers beyond that wait in FIFO order, each woken
  with a connection or a free slot handed over directly;
- HTTP/2 connections, when negotiated, are shared by concurrent requests.

A response that is not read to its end is never reused: its connection is closed. A body read
whole (:meth:`Response.aread`) may be at most ``max_response_bytes`` long (its Content-Length is
checked before reading, the bytes counted while reading); a longer one is refused and its
connection closed. An HTTP/1.1 body is read without httpcore's nested async generators
(:class:`HTTP11Body`), and any other body iterator is closed explicitly, so that no generator
is left for the garbage collector (trio warns about those). Every checkout is paired with a
release in a ``finally``, and releases run shielded from cancellation.

Opening a connection (TCP, TLS with ALPN, which httpcore connection class, proxies) is
``_connect.Connector``'s job; this module only keeps the connections it makes.

httpcore's exceptions are translated into anyoai's in exactly one place,
:func:`map_transport_errors`. Nothing here knows about models, JSON or backends.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import anyio
import attrs

from ._body import (
    BodyError,
    BodyIterator,
    Content,
    HTTP11Body,
    close_content,
    content_length,
    guarded,
    http11_body_support,
)
from ._config import DEFAULT_MAX_RESPONSE_BYTES, Timeout
from ._connect import Connection, Connector, Origin, write_failed
from ._exceptions import (
    APIConnectionError,
    APITimeoutError,
    ConfigurationError,
    PoolClosedError,
    ResponseValidationError,
)
from ._secrets import redact_url

if TYPE_CHECKING:
    import httpcore

__all__ = ["Response", "Transport", "TransportStatistics", "map_transport_errors"]

logger = logging.getLogger("anyoai")

#: request headers as httpcore takes them (the response side is `_headers.Headers`)
RawHeaders = Sequence[tuple[bytes, bytes]]

#: methods a reused connection may send once more after it failed without an answer (RFC 9110
#: 9.2.1: safe methods change nothing on the server, so a second copy does no harm)
_SAFE_METHODS = frozenset((b"GET", b"HEAD", b"OPTIONS"))


@attrs.frozen
class TransportStatistics:
    """A snapshot of the transport's connections.

    :ivar connections: connections open or opening.
    :ivar idle: connections waiting in the idle lists.
    :ivar in_use: requests holding a connection (HTTP/1.1) or a stream of one (HTTP/2).
    :ivar waiting: requests waiting for a connection.
    :ivar max_connections: the cap on ``connections``.
    """

    connections: int
    idle: int
    in_use: int
    waiting: int
    max_connections: int


@contextlib.contextmanager
def map_transport_errors() -> Iterator[None]:
    """Translate httpcore's and the OS's exceptions into anyoai's, in this one place."""
    import httpcore

    try:
        yield
    except httpcore.TimeoutException as exc:
        error: APIConnectionError = APITimeoutError(f"{type(exc).__name__}: {exc or 'timed out'}")
        error.request_sent = not isinstance(exc, (httpcore.ConnectTimeout, httpcore.PoolTimeout))
        raise error from exc
    except (httpcore.NetworkError, httpcore.ProtocolError, OSError) as exc:
        error = APIConnectionError(f"{type(exc).__name__}: {exc or 'connection failed'}")
        error.request_sent = not isinstance(exc, httpcore.ConnectError)
        raise error from exc
    except httpcore.UnsupportedProtocol as exc:
        raise APIConnectionError(f"unsupported protocol: {exc}") from exc
    except httpcore.ConnectionNotAvailable as exc:
        # the connection refused the request before writing a byte of it (it was closed)
        error = APIConnectionError("the connection was closed before the request was sent")
        error.request_sent = False
        raise error from exc


class _Waiter:
    """A request waiting for a connection; woken with one (``conn``) or with a free slot."""

    __slots__ = ("conn", "event", "origin")

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.event = anyio.Event()
        self.conn: Connection | None = None


class _Lease:
    """A request's hold on a connection, from checkout to release."""

    __slots__ = ("conn", "origin", "released", "reused", "shared")

    def __init__(
        self, conn: Connection | None, origin: Origin, *, reused: bool, shared: bool = False
    ) -> None:
        self.conn = conn
        self.origin = origin
        self.reused = reused
        self.shared = shared
        self.released = False


class Response:
    """The head of a response, and its body, which the caller must read or close.

    :ivar status: the HTTP status.
    :ivar headers: ``(name, value)`` pairs; names are lower-case.
    """

    __slots__ = ("_lease", "_raw", "_stream", "_transport", "headers", "http_version", "status")

    def __init__(self, transport: Transport, lease: _Lease, raw: httpcore.Response) -> None:
        self._transport = transport
        self._lease = lease
        self._raw = raw
        self._stream: BodyIterator | None = None
        self.status: int = raw.status
        self.headers: list[tuple[bytes, bytes]] = raw.headers
        self.http_version: bytes = raw.extensions.get("http_version", b"HTTP/1.1")

    async def aread(self) -> bytes:
        """Read the whole body, then release the connection.

        :raises ResponseValidationError: the body is longer than the transport's
            ``max_response_bytes`` (its Content-Length says so, or its bytes counted while
            reading); the connection is closed.
        """
        limit = self._transport.max_response_bytes
        chunks: list[bytes] = []
        try:
            declared = content_length(self.headers)
            if declared is not None and declared > limit:
                raise self._too_large(f"its Content-Length is {declared} bytes")
            self._stream = stream = self._transport._body_iterator(self._raw)
            size = 0
            with map_transport_errors():
                while True:
                    try:
                        chunk = await stream.__anext__()
                    except StopAsyncIteration:
                        break
                    size += len(chunk)
                    if size > limit:
                        raise self._too_large(f"more than {limit} bytes arrived")
                    chunks.append(chunk)
        except ResponseValidationError:
            await self._discard()
            raise
        finally:
            await self.aclose()
        return b"".join(chunks)

    def _too_large(self, what: str) -> ResponseValidationError:
        limit = self._transport.max_response_bytes
        return ResponseValidationError(
            f"the response body is larger than max_response_bytes ({limit} bytes): {what}; "
            "the connection was closed. Raise the limit with "
            "open_pool(max_response_bytes=...) if such bodies are expected."
        )

    async def _discard(self) -> None:
        """Close the connection (an HTTP/1.1 one: an HTTP/2 stream is reset when closed)."""
        conn = self._lease.conn
        if not self._lease.shared and conn is not None and not self._lease.released:
            await self._transport._close_connection(conn)

    def discard_nowait(self) -> None:
        """Give the connection up at once, without I/O or awaiting: close its socket, free its
        slot. For a response that can no longer be closed with :meth:`aclose` (a stream the
        garbage collector found open). An HTTP/2 connection is left to the other requests it
        serves. Does nothing once the response is closed."""
        lease, transport = self._lease, self._transport
        if lease.released:
            return
        lease.released = True
        transport._leased.discard(lease)
        if lease.shared:
            return
        stream = self._raw.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            sock.close()
        if transport._closed:
            transport._total -= 1
        else:
            transport._free_slot()

    async def read_chunk(self) -> bytes:
        """Return the next piece of the body, or ``b""`` at its end."""
        stream = self._stream
        if stream is None:
            stream = self._stream = self._transport._body_iterator(self._raw)
        with map_transport_errors():
            try:
                return await stream.__anext__()
            except StopAsyncIteration:
                return b""

    @property
    def closed(self) -> bool:
        """Whether the response was closed and its connection released."""
        return self._lease.released

    async def aclose(self) -> None:
        """Release the connection: back to the idle list if the body was read, else closed.

        The body's iterator is closed here, not left to the garbage collector (under trio, an
        async generator collected before its end is reported as a ResourceWarning).
        """
        if self._lease.released:
            return
        with anyio.CancelScope(shield=True):
            try:
                if self._stream is not None:
                    await self._stream.aclose()
                await self._raw.aclose()
            except Exception:
                logger.debug("error while closing a response", exc_info=True)
            await self._transport._release(self._lease)


class Transport:
    """Sends requests over a set of pooled httpcore connections.

    :param max_connections: the most connections open at once, over all origins.
    :param max_keepalive_connections: the most idle connections kept (``None``: no cap).
    :param keepalive_expiry: seconds an idle connection is kept before it is closed.
    :param http2: negotiate HTTP/2 (needs the ``http2`` extra, i.e. the ``h2`` package).
    :param proxy: an ``http://`` or ``https://`` proxy URL for every connection.
    :param ssl_context: the TLS settings; the platform's defaults when ``None``.
    :param network_backend: what opens the TCP streams (an ``httpcore.AsyncNetworkBackend``);
        anyoai's own ``_network.NetworkBackend`` when ``None``.
    :param max_response_bytes: the longest body :meth:`Response.aread` accepts (512 MiB).
    """

    def __init__(
        self,
        *,
        max_connections: int = 1000,
        max_keepalive_connections: int | None = None,
        keepalive_expiry: float | None = 5.0,
        http2: bool = False,
        proxy: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        import httpcore

        if (
            isinstance(max_response_bytes, bool)
            or not isinstance(max_response_bytes, int)
            or max_response_bytes < 1
        ):
            raise ConfigurationError(
                f"max_response_bytes must be an integer >= 1, got {max_response_bytes!r}",
                setting="max_response_bytes",
            )
        #: the longest body :meth:`Response.aread` accepts
        self.max_response_bytes = max_response_bytes
        self._connector = Connector(
            keepalive_expiry=keepalive_expiry,
            http2=http2,
            proxy=proxy,
            ssl_context=ssl_context,
            network_backend=network_backend,
        )
        if max_connections < 1:
            raise ConfigurationError("max_connections must be >= 1", setting="max_connections")
        self._httpcore = httpcore
        self._h11_body_type, self._h11 = http11_body_support()
        self._max = max_connections
        self._max_idle = max_keepalive_connections
        self._proxy_text = redact_url(proxy) if proxy else None
        self._idle: dict[Origin, list[Connection]] = {}
        self._shared: dict[Origin, list[Connection]] = {}
        self._leased: set[_Lease] = set()
        self._waiters: deque[_Waiter] = deque()
        self._total = 0
        self._idle_count = 0
        self._closed = False

    def __repr__(self) -> str:
        stats = self.statistics()
        proxy = f", proxy={self._proxy_text!r}" if self._proxy_text else ""
        return (
            f"<Transport connections={stats.connections}/{stats.max_connections} "
            f"idle={stats.idle} in_use={stats.in_use} waiting={stats.waiting}{proxy}>"
        )

    def statistics(self) -> TransportStatistics:
        """Return a snapshot of the connections, for introspection and tests."""
        return TransportStatistics(
            connections=self._total,
            idle=self._idle_count,
            in_use=len(self._leased),
            waiting=len(self._waiters),
            max_connections=self._max,
        )

    def _body_iterator(self, raw: httpcore.Response) -> BodyIterator:
        """What to read *raw*'s body through (see :class:`HTTP11Body`)."""
        stream = raw.stream
        if type(stream) is self._h11_body_type:
            return HTTP11Body(stream, self._h11)
        return stream.__aiter__()  # type: ignore[union-attr,return-value]

    # -- connections ------------------------------------------------------------------------

    async def _close_connection(self, conn: Connection) -> None:
        with anyio.CancelScope(shield=True):
            try:
                await conn.aclose()
            except Exception:
                logger.debug("error while closing a connection", exc_info=True)

    def _pop_idle(self, origin: Origin) -> Connection | None:
        idle = self._idle.get(origin)
        if idle:
            self._idle_count -= 1
            return idle.pop()
        return None

    def _pop_any_idle(self) -> Connection | None:
        for idle in self._idle.values():
            if idle:
                self._idle_count -= 1
                return idle.pop(0)
        return None

    def _shared_connection(self, origin: Origin) -> Connection | None:
        shared = self._shared.get(origin)
        if not shared:
            return None
        for conn in shared:
            if conn.is_available() and not conn.has_expired():
                return conn
        return None

    async def _checkout(self, origin: Origin, pool_timeout: float | None) -> _Lease:
        """Get a connection for *origin*: shared, idle, new, or after waiting for one."""
        if self._closed:
            raise PoolClosedError("the transport is closed")
        if self._shared:
            conn = self._shared_connection(origin)
            if conn is not None:
                return self._lease(conn, origin, reused=True, shared=True)
        if not self._waiters:
            conn = self._pop_idle(origin)
            if conn is not None:
                if not conn.has_expired():
                    return self._lease(conn, origin, reused=True)
                # stale (expired, or closed by the server): reuse its slot for a new connection
                await self._close_connection(conn)
                return self._lease(self._connector.new_connection(origin), origin, reused=False)
            if self._total < self._max:
                self._total += 1
                return self._lease(self._connector.new_connection(origin), origin, reused=False)
            other = self._pop_any_idle()
            if other is not None:
                await self._close_connection(other)
                return self._lease(self._connector.new_connection(origin), origin, reused=False)
        return await self._wait(origin, pool_timeout)

    def _lease(
        self, conn: Connection | None, origin: Origin, *, reused: bool, shared: bool = False
    ) -> _Lease:
        lease = _Lease(conn, origin, reused=reused, shared=shared)
        self._leased.add(lease)
        return lease

    async def _wait(self, origin: Origin, pool_timeout: float | None) -> _Lease:
        waiter = _Waiter(origin)
        self._waiters.append(waiter)
        try:
            with anyio.fail_after(pool_timeout):
                await waiter.event.wait()
        except BaseException as exc:
            if waiter.event.is_set():
                # woken, but abandoning: pass what was handed over to the next in line
                await self._hand_back(waiter)
            else:
                self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                error = APITimeoutError(
                    f"no connection became free within the pool timeout ({pool_timeout}s); "
                    f"all {self._max} connections are busy"
                )
                error.request_sent = False
                raise error from None
            raise
        if self._closed:
            raise PoolClosedError("the transport was closed while waiting for a connection")
        if waiter.conn is not None:
            return self._lease(waiter.conn, origin, reused=True)
        return self._lease(self._connector.new_connection(origin), origin, reused=False)

    async def _hand_back(self, waiter: _Waiter) -> None:
        if waiter.conn is not None:
            lease = self._lease(waiter.conn, waiter.origin, reused=True)
            await self._release(lease)
        else:
            self._free_slot()

    def _free_slot(self) -> None:
        """A connection is gone: give its slot to the first waiter, or forget it."""
        if self._waiters:
            self._waiters.popleft().event.set()
        else:
            self._total -= 1

    async def _release(self, lease: _Lease) -> None:
        """Return a lease's connection: to a waiter, to the idle list, or closed."""
        if lease.released:
            return
        lease.released = True
        self._leased.discard(lease)
        conn = lease.conn
        if conn is None:  # it never connected
            if self._closed:
                self._total -= 1
            else:
                self._free_slot()
            return
        if lease.shared:
            if conn.is_closed():
                self._drop_shared(lease.origin, conn)
            return
        if self._closed or not conn.is_idle() or conn.is_closed():
            if not conn.is_closed():
                await self._close_connection(conn)
            if self._closed:
                self._total -= 1
            else:
                self._free_slot()
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if waiter.origin == lease.origin:
                waiter.conn = conn
                waiter.event.set()
                return
            # a waiter for another origin: close this connection and give it the slot
            await self._close_connection(conn)
            waiter.event.set()
            return
        if self._max_idle is not None and self._idle_count >= self._max_idle:
            await self._close_connection(conn)
            self._total -= 1
            return
        self._idle.setdefault(lease.origin, []).append(conn)
        self._idle_count += 1

    def _drop_shared(self, origin: Origin, conn: Connection) -> None:
        shared = self._shared.get(origin)
        if shared and conn in shared:
            shared.remove(conn)
            self._free_slot()

    # -- requests ---------------------------------------------------------------------------

    async def send(
        self,
        method: bytes,
        origin: Origin,
        target: bytes,
        headers: RawHeaders,
        body: bytes | Callable[[], AsyncIterator[bytes]] | None,
        timeout: Timeout,
        on_send: Callable[[], None] | None = None,
    ) -> Response:
        """Send a request; return its response once the head has arrived.

        The caller must read the body (:meth:`Response.aread`) or close the response.
        *on_send* is called once a connection is checked out, just before the request is
        written (until then, nothing has reached the server). A streamed *body* is a callable
        making a new iterator of its bytes, called for each time it is sent.

        :raises APIConnectionError: the connection failed before a response head arrived.
        :raises APITimeoutError: a connect, write, read or pool timeout expired.
        :raises PoolClosedError: the transport was closed.
        """
        hc = self._httpcore
        url = hc.URL(scheme=origin[0], host=origin[1], port=origin[2], target=target)
        extensions = {"timeout": timeout.as_extensions()}
        for attempt in (1, 2):
            content: AsyncIterator[bytes] | Content | None
            content = guarded(body()) if callable(body) else Content(body or b"")
            request = hc.Request(
                method, url, headers=headers, content=content, extensions=extensions
            )
            lease = await self._checkout(origin, timeout.pool)
            try:
                with map_transport_errors():
                    conn = lease.conn
                    if conn is None:
                        conn = lease.conn = await self._connector.connect(origin, timeout.connect)
                    if on_send is not None:
                        on_send()
                    raw = await conn.handle_async_request(request)
            except BodyError as exc:
                await self._release(lease)  # half a request went out: the connection closes
                raise exc.cause from None
            except APIConnectionError as exc:
                await self._release(lease)
                await close_content(content)
                if attempt == 1 and lease.reused and _may_send_again(method, lease, exc):
                    logger.debug("sending once more on a new connection: %s", exc)
                    continue
                raise
            except BaseException:
                await self._release(lease)
                await close_content(content)
                raise
            if not lease.shared and raw.extensions.get("http_version") == b"HTTP/2":
                self._share(lease, conn)
            return Response(self, lease, raw)
        raise AssertionError("unreachable")  # pragma: no cover

    def _share(self, lease: _Lease, conn: Connection) -> None:
        """A new connection negotiated HTTP/2: let concurrent requests use it too."""
        lease.shared = True
        self._shared.setdefault(lease.origin, []).append(conn)

    async def aclose(self) -> None:
        """Close every connection, idle or in use, and wake every waiter. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            waiters, self._waiters = self._waiters, deque()
            for waiter in waiters:
                waiter.event.set()
            conns = [c for idle in self._idle.values() for c in idle]
            conns += [c for shared in self._shared.values() for c in shared]
            conns += [lease.conn for lease in self._leased if not lease.shared and lease.conn]
            self._idle.clear()
            self._shared.clear()
            self._idle_count = 0
            for conn in conns:
                await self._close_connection(conn)
            self._total = len([lease for lease in self._leased if not lease.shared])


def _may_send_again(method: bytes, lease: _Lease, exc: APIConnectionError) -> bool:
    """Whether a request that failed on a *reused* connection, before any response, may be
    sent once more on a new one without the retry policy.

    Only when a second copy cannot do harm: the request provably never reached the server
    whole (the connection refused it before writing, or a write of it failed: a server acts
    on no incomplete request), or its method is safe. A request that was written whole and
    got no answer (the server may have read it, then closed) is not sent again here: a POST
    would run twice, even with ``max_retries=0``.
    """
    if isinstance(exc, APITimeoutError):
        return False
    if not exc.request_sent:
        return True  # refused before a byte was written (ConnectionNotAvailable)
    if not _is_stale_connection_error(exc):
        return False
    conn = lease.conn
    if not lease.shared and conn is not None and write_failed(conn):
        return True  # the request never left whole
    return method in _SAFE_METHODS


def _is_stale_connection_error(exc: APIConnectionError) -> bool:
    """Whether *exc* is what a request on a connection closed by the server while idle raises."""
    import httpcore

    return isinstance(
        exc.__cause__,
        (httpcore.RemoteProtocolError, httpcore.ReadError, httpcore.WriteError, OSError),
    )
