"""The HTTP/1.1 connection loop of the fake server: h11 over anyio sockets, one exchange at a time.

:class:`HTTPHandler` serves each connection the server accepts (keep-alive, ``Connection:
close``, ``Expect: 100-continue``, chunked request bodies): it records every request, takes its
fault (:mod:`anyoai.testing._faults`), asks the app (:class:`~anyoai.testing._framework.FakeApp`)
for the answer, has the rate limiter (:mod:`anyoai.testing._ratelimit`) admit it, and writes it:
with ``Content-Length``, or chunked for streams, breaking it as the fault says. While an answer
is delayed or streamed it watches the connection, and abandons the answer when the client
leaves.

Large bodies (file uploads and downloads of tens of MiB) go through without extra copies: a
request body is kept once (in :attr:`RecordedRequest.body
<anyoai.testing._framework.RecordedRequest.body>`, not parsed as JSON when it is multipart), and
a large answer is written straight from its bytes.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import anyio
import anyio.abc
import attrs
import h11

from ._faults import (
    MALFORMED_EVENT,
    SERVER_ERROR,
    Fault,
    FaultQueue,
    fault_headers,
    fault_reply,
    reason_phrase,
)
from ._framework import (
    EndpointError,
    FakeApp,
    RecordedRequest,
    Reply,
    dumps,
    request_id,
)
from ._ratelimit import Limiter

__all__ = ["Connection", "HTTPHandler"]

logger = logging.getLogger("anyoai.testing")

_RECEIVE_SIZE: Final = 65536
# an answer body above this is sent on its own, straight from its bytes
_INLINE_BODY: Final = 1 << 20
# while an answer is delayed or streamed, read at most this much of what the client pipelines
_WATCH_LIMIT: Final = 1 << 20
_DISCONNECTS: Final = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    OSError,
)


def _model_of(request: RecordedRequest, reply: Reply) -> str:
    if reply.cost.model is not None:
        return reply.cost.model
    named = request.json.get("model") if isinstance(request.json, dict) else None
    return named if isinstance(named, str) else "default"


def _decode(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _record(event: h11.Request, body: bytes) -> RecordedRequest:
    target = _decode(event.target)
    if target.startswith("/"):
        path, _, query = target.partition("?")
    else:  # absolute-form ("http://host/v1/models") or "*"
        parts = urllib.parse.urlsplit(target)
        path, query = parts.path or target, parts.query
    headers: dict[str, str] = {}
    for raw_name, raw_value in event.headers:
        name = raw_name.decode("ascii", "replace").lower()
        value = _decode(raw_value)
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    parsed: Any = None
    # a multipart body (a file upload, possibly large) is never JSON: do not decode it
    multipart = headers.get("content-type", "").lstrip().lower().startswith("multipart/")
    if body and not multipart and not body.isspace():
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            parsed = None
    return RecordedRequest(
        event.method.decode("ascii", "replace").upper(),
        path,
        dict(urllib.parse.parse_qsl(query, keep_blank_values=True)),
        headers,
        body,
        parsed,
    )


def _encode(conn: h11.Connection, event: h11.Event) -> bytes:
    return conn.send(event) or b""


def _wire(headers: Sequence[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("ascii"), value.encode("utf-8")) for name, value in headers]


def _head(reply: Reply, headers: Sequence[tuple[str, str]]) -> h11.Response:
    """The status line and *headers* of *reply*."""
    return h11.Response(
        status_code=reply.status, headers=_wire(headers), reason=reason_phrase(reply.status)
    )


@attrs.define(eq=False)
class Connection:
    """A connection being served: the cancel scope that ends it, an event set once it is
    closed, and whether it sits idle between requests."""

    scope: anyio.CancelScope
    closed: anyio.Event
    idle: bool = False


@attrs.define(eq=False, kw_only=True)
class HTTPHandler:
    """Serves the connections of one fake server: reads each request, answers it, writes it.

    :param app: the endpoints.
    :param limiter: the server's rate limiter.
    :param faults: the scripted faults.
    :param requests: the list every request is appended to, in order of arrival.
    :param latency: seconds every answer waits after the rate-limit decision.
    :param stream_chunk_delay: seconds to wait between the events of a stream.

    :ivar connections: the connections being served.
    """

    app: FakeApp
    limiter: Limiter
    faults: FaultQueue
    requests: list[RecordedRequest]
    latency: float
    stream_chunk_delay: float
    connections: set[Connection] = attrs.field(init=False, factory=set)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock)
    _open: int = attrs.field(init=False, default=0)

    @property
    def open_connections(self) -> int:
        """How many client connections are open right now."""
        with self._lock:
            return self._open

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self.requests.clear()

    async def close_connections(self, *, idle_only: bool = False) -> int:
        """Close every connection (with *idle_only*, those idle between requests) and return
        how many, once they are closed."""
        closing = [
            connection for connection in self.connections if connection.idle or not idle_only
        ]
        for connection in closing:
            connection.scope.cancel()
        for connection in closing:
            await connection.closed.wait()
        return len(closing)

    async def serve(self, stream: anyio.abc.SocketStream) -> None:
        """Serve *stream* until the client or the server ends the connection, then close it.

        Lost connections and protocol errors end it quietly (logged at debug level), other
        errors with their traceback logged; only a cancellation propagates."""
        connection = Connection(scope=anyio.CancelScope(), closed=anyio.Event())
        self.connections.add(connection)
        with self._lock:
            self._open += 1
        try:
            with connection.scope:
                await self._serve(stream, connection)
        except (*_DISCONNECTS, h11.ProtocolError) as exc:
            logger.debug("fake server: connection ended: %r", exc)
        except Exception:
            logger.exception("fake server: unexpected error while serving a connection")
        finally:
            try:
                await anyio.aclose_forcefully(stream)
            finally:
                with self._lock:
                    self._open -= 1
                self.connections.discard(connection)
                connection.closed.set()

    async def _serve(self, stream: anyio.abc.SocketStream, connection: Connection) -> None:
        conn = h11.Connection(h11.SERVER)
        while True:
            received = await self._receive_request(stream, conn, connection)
            if received is None:
                return
            if not await self._exchange(stream, conn, *received):
                return
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return  # Connection: close, HTTP/1.0, or an unfinished exchange
            conn.start_next_cycle()

    async def _receive_request(
        self, stream: anyio.abc.SocketStream, conn: h11.Connection, connection: Connection
    ) -> tuple[h11.Request, bytes] | None:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                await self._reject(stream, conn, exc)
                return None
            if event is h11.NEED_DATA:
                if conn.they_are_waiting_for_100_continue:
                    continue_event = h11.InformationalResponse(status_code=100, headers=[])
                    await stream.send(_encode(conn, continue_event))
                # idle: between requests, with nothing of the next one received yet
                connection.idle = request is None and not conn.trailing_data[0]
                try:
                    data = await stream.receive(_RECEIVE_SIZE)
                except anyio.EndOfStream:
                    data = b""
                finally:
                    connection.idle = False
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage) and request is not None:
                return request, bytes(body)
            else:  # ConnectionClosed: the client is done with this connection
                return None

    async def _reject(
        self, stream: anyio.abc.SocketStream, conn: h11.Connection, exc: h11.RemoteProtocolError
    ) -> None:
        logger.debug("fake server: unreadable request: %s", exc)
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        with self._lock:
            seq = self.app.state.next_seq()
        status = exc.error_status_hint
        reply = EndpointError(status, f"Could not read the HTTP request: {exc}").reply()
        headers = self._headers(reply, seq, 0, None)
        headers.append(("connection", "close"))
        headers.append(("content-length", str(len(reply.body))))
        try:
            response = h11.Response(
                status_code=status, headers=headers, reason=reason_phrase(status)
            )
            data = _encode(conn, response) + _encode(conn, h11.Data(data=reply.body))
            await stream.send(data + _encode(conn, h11.EndOfMessage()))
        except (*_DISCONNECTS, h11.ProtocolError) as error:
            logger.debug("fake server: could not send the 400: %r", error)

    # ----------------------------------------------------------------------------- exchanges

    async def _exchange(
        self, stream: anyio.abc.SocketStream, conn: h11.Connection, event: h11.Request, body: bytes
    ) -> bool:
        """Answer one request; return whether the connection may serve another."""
        started = anyio.current_time()
        request = _record(event, body)
        with self._lock:
            seq = self.app.state.next_seq()
            self.requests.append(request)
        fault, reply = self.faults.take(request)
        if (
            fault is not None
            and fault.latency > 0
            and not await self._sleep(stream, conn, fault.latency)
        ):
            logger.debug("fake server: client left during the latency of request %d", seq)
            return False
        if fault is not None and fault.drop == "before_headers":
            logger.debug("fake server: dropping request %d before the headers", seq)
            return False
        refund = 0
        if reply is None:
            if fault is not None and fault.replaces_answer:
                reply = fault_reply(fault)
            else:
                reply = self._answer(request, seq)
                if reply.status < 400:  # a real answer: the rate limiter decides
                    admission = self.limiter.admit(
                        reply.cost, _model_of(request, reply), anyio.current_time()
                    )
                    reply = admission.rejection or reply
                    refund = admission.refund
        try:
            if self.latency > 0 and not await self._sleep(stream, conn, self.latency):
                logger.debug("fake server: client left during the latency of request %d", seq)
                return False
        finally:
            # the answer is known (or abandoned): give back the reserved tokens it did not use
            self.limiter.release(refund, anyio.current_time())
        if fault is not None and fault.malformed and not reply.streaming:
            cut = reply.body[: max(1, len(reply.body) // 2)] if reply.body else b'{"'
            status = fault.status if fault.status is not None else 200
            reply = attrs.evolve(reply, status=status, body=cut)
        elapsed_ms = int((anyio.current_time() - started) * 1000)
        headers = self._headers(reply, seq, elapsed_ms, fault)
        if reply.streaming:
            streamed = reply

            async def send_stream() -> bool:
                return await self._send_stream(stream, conn, streamed, headers, fault)

            return await self._watching(stream, conn, send_stream)
        return await self._send_body(stream, conn, reply, headers, fault, request.method)

    async def _sleep(
        self, stream: anyio.abc.SocketStream, conn: h11.Connection, delay: float
    ) -> bool:
        """Wait *delay* seconds unless the client leaves; return whether it stayed."""

        async def wait() -> bool:
            await anyio.sleep(delay)
            return True

        return await self._watching(stream, conn, wait)

    def _answer(self, request: RecordedRequest, seq: int) -> Reply:
        try:
            return self.app.handle(request, seq)
        except Exception:
            logger.exception(
                "fake server: the endpoint failed on %s %s", request.method, request.path
            )
            return EndpointError(
                500, SERVER_ERROR, type="server_error", code="server_error"
            ).reply()

    def _headers(
        self, reply: Reply, seq: int, elapsed_ms: int, fault: Fault | None
    ) -> list[tuple[str, str]]:
        merged: dict[str, tuple[str, str]] = {}
        for name, value in reply.headers:
            merged[name.lower()] = (name, value)
        merged["x-request-id"] = ("x-request-id", request_id(seq))
        merged["openai-version"] = ("openai-version", "2020-10-01")
        merged["openai-processing-ms"] = ("openai-processing-ms", str(elapsed_ms))
        for name, value in self.app.response_headers(seq):
            merged[name.lower()] = (name, value)
        for name, value in self.limiter.headers(anyio.current_time()):
            merged[name] = (name, value)
        if fault is not None:
            for name, value in fault_headers(fault):
                merged[name.lower()] = (name, value)
        return list(merged.values())

    async def _watching(
        self,
        stream: anyio.abc.SocketStream,
        conn: h11.Connection,
        action: Callable[[], Awaitable[bool]],
    ) -> bool:
        """Run *action* while watching for the client to leave; cancel it if it does."""
        lost = False
        result = False

        async def watch(scope: anyio.CancelScope) -> None:
            nonlocal lost
            received = 0
            try:
                while received < _WATCH_LIMIT:
                    data = await stream.receive(_RECEIVE_SIZE)
                    conn.receive_data(data)  # a pipelined request: keep it for later
                    received += len(data)
            except _DISCONNECTS:
                lost = True
                scope.cancel()

        async with anyio.create_task_group() as task_group:
            task_group.start_soon(watch, task_group.cancel_scope)
            try:
                result = await action()
            except (*_DISCONNECTS, h11.ProtocolError) as exc:
                logger.debug("fake server: connection lost while answering: %r", exc)
                result = False
            task_group.cancel_scope.cancel()
        return result and not lost

    async def _send_body(
        self,
        stream: anyio.abc.SocketStream,
        conn: h11.Connection,
        reply: Reply,
        headers: list[tuple[str, str]],
        fault: Fault | None,
        method: str,
    ) -> bool:
        body = reply.body
        headers.append(("content-length", str(len(body))))
        response = _head(reply, headers)
        if fault is not None and fault.drop in ("mid_body", "mid_stream"):
            data = _encode(conn, response) + _encode(conn, h11.Data(data=body[: len(body) // 2]))
            await stream.send(data)
            logger.debug("fake server: dropped the connection in the middle of a body")
            return False
        data = _encode(conn, response)
        if body and method != "HEAD":
            if len(body) <= _INLINE_BODY:
                data += _encode(conn, h11.Data(data=body))
            else:  # a large body (a file's content): no joined or concatenated copy of it
                await stream.send(data)
                data = b""
                for piece in conn.send_with_data_passthrough(h11.Data(data=body)) or ():
                    await stream.send(piece)
        await stream.send(data + _encode(conn, h11.EndOfMessage()))
        return True

    async def _send_stream(
        self,
        stream: anyio.abc.SocketStream,
        conn: h11.Connection,
        reply: Reply,
        headers: list[tuple[str, str]],
        fault: Fault | None,
    ) -> bool:
        events = reply.events or ()
        response = _head(reply, headers)
        await stream.send(_encode(conn, response))
        strike = min(fault.after_events, len(events) - 1) if fault is not None else -1
        for index, payload in enumerate(events):
            if index == strike and fault is not None:
                if fault.drop is not None:
                    logger.debug("fake server: dropped the connection in the middle of a stream")
                    return False
                if fault.error_event:
                    error = {
                        "error": {
                            "message": fault.message or SERVER_ERROR,
                            "type": "server_error",
                            "param": None,
                            "code": fault.code or "stream_error",
                        }
                    }
                    await self._send_event(stream, conn, dumps(error).encode("utf-8"))
                    await stream.send(_encode(conn, h11.EndOfMessage()))
                    return True
                if fault.malformed:
                    await stream.send(_encode(conn, h11.Data(data=MALFORMED_EVENT)))
            if index and self.stream_chunk_delay > 0:
                await anyio.sleep(self.stream_chunk_delay)
            await self._send_event(stream, conn, payload.encode("utf-8"))
        await stream.send(_encode(conn, h11.EndOfMessage()))
        return True

    @staticmethod
    async def _send_event(
        stream: anyio.abc.SocketStream, conn: h11.Connection, data: bytes
    ) -> None:
        await stream.send(_encode(conn, h11.Data(data=b"data: " + data + b"\n\n")))
