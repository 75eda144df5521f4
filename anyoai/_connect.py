"""Opening connections: TCP, TLS with ALPN, and httpcore's HTTP/1.1, HTTP/2 or proxy connection.

The transport (``_transport``) keeps the pool of connections; this module only makes them.
httpcore's ``AsyncHTTPConnection``, the wrapper that connects lazily, adds a lock and a layer per
request, so a direct connection is opened here instead: TCP through the network backend
(anyoai's own ``_network.NetworkBackend`` unless another is given), then TLS with ALPN for
``https``, and the stream goes to httpcore's ``AsyncHTTP11Connection``, or
``AsyncHTTP2Connection`` when the server chose ``h2``. Through a proxy, httpcore's proxy
connections are used; they connect on their first request.

Only the transport imports this module (one way), and the pool imports the transport when it
opens, so httpcore, imported here as in ``_network``, is still not loaded by ``import anyoai``.
"""

from __future__ import annotations

import ssl
from typing import TypeAlias

import anyio
import httpcore

from ._exceptions import ConfigurationError
from ._network import NetworkBackend

__all__ = ["Connection", "Connector", "Origin", "write_failed"]

Origin: TypeAlias = tuple[bytes, bytes, int]  # scheme, host, port
Connection: TypeAlias = httpcore.AsyncConnectionInterface


class Connector:
    """Makes the connections of one transport.

    :param keepalive_expiry: seconds an idle connection is kept (httpcore's connections track it).
    :param http2: offer HTTP/2 by ALPN (needs the ``http2`` extra, i.e. the ``h2`` package).
    :param proxy: an ``http://`` or ``https://`` proxy URL for every connection.
    :param ssl_context: the TLS settings; the platform's defaults (certifi's CAs) when ``None``.
    :param network_backend: what opens the TCP streams; anyoai's own when ``None``.
    :raises ConfigurationError: ``http2=True`` without the ``h2`` package.
    """

    def __init__(
        self,
        *,
        keepalive_expiry: float | None = 5.0,
        http2: bool = False,
        proxy: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        if http2:
            try:
                import h2  # noqa: F401
            except ImportError:
                raise ConfigurationError(
                    "http2=True needs the h2 package: pip install 'anyoai[http2]'",
                    setting="http2",
                ) from None
        self._keepalive_expiry = keepalive_expiry
        self._http2 = http2
        self._proxy = httpcore.URL(proxy) if proxy else None
        self._ssl_context = ssl_context
        self._ssl_default: ssl.SSLContext | None = None
        self._network = network_backend if network_backend is not None else NetworkBackend()
        self._origins: dict[Origin, httpcore.Origin] = {}

    def new_connection(self, origin: Origin) -> Connection | None:
        """A connection object for *origin* that connects on its first request (through a
        proxy), or ``None``: :meth:`connect` opens a direct one when the request is sent."""
        if self._proxy is None:
            return None
        from httpcore._async.http_proxy import (
            AsyncForwardHTTPConnection,
            AsyncTunnelHTTPConnection,
        )

        scheme, host, port = origin
        remote = httpcore.Origin(scheme, host, port)
        if scheme == b"http":
            return AsyncForwardHTTPConnection(
                proxy_origin=self._proxy.origin,
                remote_origin=remote,
                keepalive_expiry=self._keepalive_expiry,
                network_backend=self._network,
            )
        return AsyncTunnelHTTPConnection(
            proxy_origin=self._proxy.origin,
            remote_origin=remote,
            ssl_context=self._ssl_context or self._default_ssl_context(),
            keepalive_expiry=self._keepalive_expiry,
            http1=True,
            http2=self._http2,
            network_backend=self._network,
        )

    async def connect(self, origin: Origin, timeout: float | None) -> Connection:
        """Open a direct connection to *origin* (TCP, then TLS with ALPN for ``https``) and
        return httpcore's HTTP/1.1 or HTTP/2 connection over it."""
        scheme, host, port = origin
        hostname = host.decode("ascii")
        stream = await self._network.connect_tcp(hostname, port, timeout=timeout)
        http2 = False
        if scheme == b"https":
            ssl_context = self._ssl_context or self._default_ssl_context()
            ssl_context.set_alpn_protocols(["http/1.1", "h2"] if self._http2 else ["http/1.1"])
            stream = await stream.start_tls(ssl_context, server_hostname=hostname, timeout=timeout)
            http2 = stream.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
        target = self._origins.get(origin)
        if target is None:
            target = self._origins[origin] = httpcore.Origin(scheme, host, port)
        if http2:
            return httpcore.AsyncHTTP2Connection(target, stream, self._keepalive_expiry)
        return _http11_connection(target, stream, self._keepalive_expiry)

    def _default_ssl_context(self) -> ssl.SSLContext:
        # created once: loading the CA bundle costs milliseconds (httpcore would do it per
        # connection); the ALPN protocols are set on it at each connect
        if self._ssl_default is None:
            try:
                import certifi

                self._ssl_default = ssl.create_default_context(cafile=certifi.where())
            except ImportError:  # pragma: no cover - certifi comes with httpcore
                self._ssl_default = ssl.create_default_context()
        return self._ssl_default


def write_failed(conn: Connection) -> bool:
    """Whether a write on *conn* failed: for an HTTP/1.1 connection (one request at a time), the
    request being written did not leave whole, so the server cannot have acted on it.

    httpcore ignores a failed write and goes on to read the response, so only the network
    stream knows (``_network.SocketStream.write_failed``). ``False`` when it cannot be told:
    an HTTP/2 connection (shared by many requests), a proxy's, another network backend's.
    """
    if not isinstance(conn, httpcore.AsyncHTTP11Connection):
        return False
    stream = getattr(conn, "_network_stream", None)
    return getattr(stream, "write_failed", False) is True


def _http11_connection(
    origin: httpcore.Origin, stream: httpcore.AsyncNetworkStream, keepalive_expiry: float | None
) -> httpcore.AsyncHTTP11Connection:
    """httpcore's HTTP/1.1 connection over *stream*, its state lock swapped for one that does
    not yield when free.

    httpcore takes that lock twice per request, and its lock always yields to the event loop,
    even uncontended: two extra trips through the loop per request. The transport leases an
    HTTP/1.1 connection to one request at a time, so the lock is never contended; anyio's
    ``fast_acquire`` lock keeps the same exclusion without the trips. (Should a future httpcore
    rename the attribute, the assignment is inert and httpcore's own lock is used.)
    """
    connection = httpcore.AsyncHTTP11Connection(origin, stream, keepalive_expiry)
    if hasattr(connection, "_state_lock"):
        connection._state_lock = anyio.Lock(fast_acquire=True)  # type: ignore[assignment]
    return connection
