"""httpcore's network layer, lean: non-blocking sockets, awaited through anyio only when not ready.

httpcore's own AnyIO backend goes through anyio's stream objects and enters a cancel scope
(``fail_after``) around every read and every write, ready or not; that costs more CPU per request
than anything else under httpcore's HTTP/1.1 code (``docs/benchmarks.md``). This backend tries
the socket first: a write the kernel takes at once, or a read whose bytes have already arrived,
is one system call. Only a socket that is not ready is awaited (``anyio.wait_readable`` /
``anyio.wait_writable``), and only that wait runs under the phase's timeout, unless an
enclosing deadline (the request's total timeout) comes first anyway.

- **TCP**: the resolved addresses are raced "happy eyeballs" style (RFC 8305) within the
  connect timeout; ``TCP_NODELAY`` is set, then the caller's socket options.
- **TLS**: an :class:`ssl.SSLObject` over memory buffers, on top of any stream of this module
  (so TLS through an HTTPS proxy's tunnel works too). No ``close_notify`` is sent on close,
  and a peer's EOF without one ends the stream (as httpcore's own backends do).
- **Errors** are httpcore's (``ConnectError``, ``ReadTimeout``, ...), which the transport
  translates in its one place.

A read that finds its bytes already there returns without a trip through the event loop, so a
small response (one read, after the wait for it) costs no checkpoint and no clock read. A body
that keeps arriving faster than it is consumed (a long stream, a large download) would then
never yield: no deadline could fire and no other task could run. So a read that finds its data
without waiting starts a run (it notes the time), and a read in a run yields first
(``anyio.lowlevel.checkpoint``) once :data:`YIELD_INTERVAL` has passed since the run began or
since the last yield: a deadline fires, and other tasks run, within about one interval even
when the data is always there. The yield comes before the read, so a cancellation there loses
no byte.

A write that fails is remembered (:attr:`SocketStream.write_failed`): httpcore ignores a write
error and goes on to read the response, and the transport needs to know that the request never
left whole before it sends it again.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio
import anyio.lowlevel
import httpcore

__all__ = ["NetworkBackend"]

_READ_SIZE = 65536  # bytes asked of the socket when TLS needs more ciphertext

#: seconds a run of reads that find their data ready may go on before one yields to the event
#: loop. Measured per ready read: the clock read that watches the run costs ~70 ns (a yield on
#: every read would cost 2.6 µs under asyncio, 3.8 µs under trio; every 16th read, 0.2-0.3 µs);
#: a yield every 5 ms is under 0.1 % of the time, and a deadline fires within ~5-10 ms.
YIELD_INTERVAL = 0.005

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


def _is_readable(sock: socket.socket) -> bool:
    """Whether *sock* has data or an EOF waiting (for an idle connection: the server closed it)."""
    if sock.fileno() < 0:
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([sock], [], [], 0)  # pragma: no cover - Windows
    return bool(readable)


async def _wait(
    wait: Callable[[socket.socket], Awaitable[None]],
    sock: socket.socket,
    timeout: float | None,
    on_timeout: type[httpcore.TimeoutException],
    on_close: type[httpcore.NetworkError],
) -> None:
    """Wait until *sock* is ready, within *timeout*; raise httpcore's exceptions otherwise."""
    try:
        if timeout is None or anyio.current_effective_deadline() <= anyio.current_time() + timeout:
            await wait(sock)  # no timeout, or an enclosing deadline (the total) comes first
        else:
            with anyio.fail_after(timeout):
                await wait(sock)
    except TimeoutError:
        raise on_timeout(f"timed out after {timeout}s") from None
    except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
        raise on_close("the connection was closed") from exc


class _Stream(httpcore.AsyncNetworkStream):
    """What both streams share: TLS on top of either (a proxy's tunnel carries TLS in TLS)."""

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await TLSStream.wrap(self, ssl_context, server_hostname, timeout)


class SocketStream(_Stream):
    """A connected non-blocking socket.

    :ivar write_failed: a write raised (the connection is broken, and whatever was being
        written did not leave whole).
    """

    __slots__ = ("_sock", "_yield_due", "write_failed")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        #: in a run of reads that found data ready, when the next yield is due; ``None`` after
        #: a read that waited (or yielded): the next ready read starts a run
        self._yield_due: float | None = None
        self.write_failed = False

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        sock = self._sock
        due = self._yield_due
        if due is not None and time.monotonic() >= due:
            # a run of ready reads: let deadlines fire and other tasks run (before reading,
            # so that a cancellation here loses nothing)
            await anyio.lowlevel.checkpoint()
            due = self._yield_due = None
        waited = False
        while True:
            try:
                data = sock.recv(max_bytes)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                raise httpcore.ReadError(f"{type(exc).__name__}: {exc}") from exc
            else:
                if waited:
                    self._yield_due = None  # that wait went through the event loop
                elif due is None:
                    self._yield_due = time.monotonic() + YIELD_INTERVAL
                return data
            await _wait(
                anyio.wait_readable, sock, timeout, httpcore.ReadTimeout, httpcore.ReadError
            )
            waited = True

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        sock = self._sock
        view = memoryview(buffer)
        while view:
            try:
                sent = sock.send(view)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self.write_failed = True
                raise httpcore.WriteError(f"{type(exc).__name__}: {exc}") from exc
            view = view[sent:]
            if view:
                try:
                    await _wait(
                        anyio.wait_writable,
                        sock,
                        timeout,
                        httpcore.WriteTimeout,
                        httpcore.WriteError,
                    )
                except BaseException:
                    self.write_failed = True  # part of the buffer never left
                    raise

    async def aclose(self) -> None:
        if self._sock.fileno() >= 0:
            anyio.notify_closing(self._sock)  # a task waiting on it gets an error, not a hang
            self._sock.close()

    def get_extra_info(self, info: str) -> Any:
        sock = self._sock
        if info == "is_readable":
            return _is_readable(sock)
        if info == "socket":
            return sock
        if info in ("client_addr", "server_addr"):
            try:
                return sock.getsockname() if info == "client_addr" else sock.getpeername()
            except OSError:
                return None
        return None


class TLSStream(_Stream):
    """TLS over another stream of this module: an :class:`ssl.SSLObject` and two memory BIOs.

    Ciphertext leaves in the order it was produced: whoever sends it (a write, or a read that
    must answer the peer) takes it from the outgoing buffer and sends it under one lock.
    """

    def __init__(
        self,
        transport: httpcore.AsyncNetworkStream,
        ssl_object: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
    ) -> None:
        self._transport = transport
        self._ssl = ssl_object
        self._incoming = incoming
        self._outgoing = outgoing
        self._send_lock = anyio.Lock(fast_acquire=True)

    @classmethod
    async def wrap(
        cls,
        transport: httpcore.AsyncNetworkStream,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None,
        timeout: float | None,
    ) -> TLSStream:
        """Run the client handshake over *transport*; close it if the handshake fails."""
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        ssl_object = ssl_context.wrap_bio(
            incoming, outgoing, server_side=False, server_hostname=server_hostname
        )
        stream = cls(transport, ssl_object, incoming, outgoing)
        try:
            await stream._handshake(timeout)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await transport.aclose()
            raise
        return stream

    async def _handshake(self, timeout: float | None) -> None:
        try:
            while True:
                try:
                    self._ssl.do_handshake()
                except ssl.SSLWantReadError:
                    await self._flush(timeout)
                    if not await self._fill(timeout):
                        raise httpcore.ConnectError(
                            "the server closed the connection during TLS"
                        ) from None
                    continue
                await self._flush(timeout)
                return
        except (httpcore.ReadTimeout, httpcore.WriteTimeout) as exc:
            raise httpcore.ConnectTimeout(f"TLS handshake: {exc}") from exc
        except (httpcore.ReadError, httpcore.WriteError, ssl.SSLError) as exc:
            raise httpcore.ConnectError(f"TLS handshake: {exc}") from exc

    async def _fill(self, timeout: float | None) -> bool:
        """Feed the next ciphertext from the transport to the TLS object; False at its EOF."""
        data = await self._transport.read(_READ_SIZE, timeout)
        if not data:
            self._incoming.write_eof()
            return False
        self._incoming.write(data)
        return True

    async def _flush(self, timeout: float | None) -> None:
        if self._outgoing.pending:
            async with self._send_lock:
                data = self._outgoing.read()
                if data:
                    await self._transport.write(data, timeout)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        while True:
            try:
                return self._ssl.read(max_bytes)
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            except ssl.SSLError as exc:
                raise httpcore.ReadError(f"TLS: {exc}") from exc
            await self._flush(timeout)
            await self._fill(timeout)  # at EOF, the TLS object then reports the end

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        async with self._send_lock:
            try:
                self._ssl.write(buffer)
            except ssl.SSLError as exc:
                raise httpcore.WriteError(f"TLS: {exc}") from exc
            await self._transport.write(self._outgoing.read(), timeout)

    async def aclose(self) -> None:
        await self._transport.aclose()

    @property
    def write_failed(self) -> bool:
        """Whether a write of the stream underneath failed (see :class:`SocketStream`)."""
        return bool(getattr(self._transport, "write_failed", False))

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._ssl
        return self._transport.get_extra_info(info)


#: what ``anyio.getaddrinfo`` returns for each address: family, kind, protocol, canonical name
#: and the ``(host, port)`` address
AddressInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[str, int]]

#: how long an attempt on one address runs alone before the next address is tried beside it
#: (RFC 8305's "connection attempt delay")
ATTEMPT_DELAY = 0.25


async def happy_eyeballs(
    open_one: Callable[[AddressInfo], Awaitable[socket.socket]], infos: list[AddressInfo]
) -> socket.socket:
    """Connect to the first of *infos* that answers (RFC 8305, as anyio's ``connect_tcp``).

    The addresses are tried in order; the next one starts when the previous attempt has failed
    or has run for :data:`ATTEMPT_DELAY`, so a black-holed address (often an IPv6 one without
    a route) costs a quarter of a second, not the connect timeout. The first connected socket
    wins; the other attempts are cancelled and their sockets closed.
    """
    winners: list[socket.socket] = []
    errors: list[OSError] = []
    try:
        async with anyio.create_task_group() as group:
            for info in infos:
                failed = anyio.Event()

                async def attempt(info: AddressInfo = info, failed: anyio.Event = failed) -> None:
                    try:
                        sock = await open_one(info)
                    except OSError as exc:
                        errors.append(exc)
                        failed.set()
                        return
                    winners.append(sock)
                    group.cancel_scope.cancel()

                group.start_soon(attempt)
                with anyio.move_on_after(ATTEMPT_DELAY):
                    await failed.wait()
    except BaseException:
        for sock in winners:
            sock.close()
        raise
    if winners:
        for sock in winners[1:]:  # two attempts connected at once: keep the first
            sock.close()
        return winners[0]
    if len(errors) == 1:
        raise errors[0]
    raise OSError("every address failed: " + "; ".join(str(e) for e in errors)) from errors[0]


async def _open_socket(
    family: int,
    kind: int,
    proto: int,
    address: str | tuple[str, int],
    options: list[SocketOption],
    *,
    bind: tuple[str, int] | None = None,
) -> socket.socket:
    """A non-blocking socket connected to *address* (``TCP_NODELAY`` for TCP, then *options*);
    closed if connecting fails or is cancelled."""
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        if family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for option in options:
            sock.setsockopt(*option)
        if bind is not None:
            sock.bind(bind)
        try:
            sock.connect(address)
        except (BlockingIOError, InterruptedError):
            await anyio.wait_writable(sock)
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise OSError(error, os.strerror(error)) from None
    except BaseException:
        sock.close()
        raise
    return sock


class NetworkBackend(httpcore.AsyncNetworkBackend):
    """Opens :class:`SocketStream` s: what the transport gives httpcore's connections."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        options = list(socket_options or ())

        async def open_one(info: AddressInfo) -> socket.socket:
            family, kind, proto, _, address = info
            bind = None if local_address is None else (local_address, 0)
            return await _open_socket(family, kind, proto, address, options, bind=bind)

        async def connect() -> SocketStream:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            if not infos:
                raise OSError(f"no address found for {host!r}")
            if len(infos) == 1:
                return SocketStream(await open_one(infos[0]))
            return SocketStream(await happy_eyeballs(open_one, infos))

        return await self._connecting(connect, timeout)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        options = list(socket_options or ())

        async def connect() -> SocketStream:
            sock = await _open_socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, path, options)
            return SocketStream(sock)

        return await self._connecting(connect, timeout)

    @staticmethod
    async def _connecting(
        connect: Callable[[], Awaitable[SocketStream]], timeout: float | None
    ) -> SocketStream:
        try:
            with anyio.fail_after(timeout):
                return await connect()
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"connect timed out after {timeout}s") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"{type(exc).__name__}: {exc}") from exc

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)
