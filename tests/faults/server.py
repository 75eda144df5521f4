"""A byte-level fault server: real HTTP/1.1 on loopback, misbehaving on cue.

``async with FaultServer() as server:`` listens on ``127.0.0.1`` (a free port, ``server.url``)
in the test's own event loop, asyncio or trio. Each request is read whole first (the head, then
the body by Content-Length or chunked) and recorded in ``server.requests``; then the next action
of the script (``server.script(action, ...)``) decides what happens. With the script empty, the
answer is a valid chat completion, 200, keep-alive. ``server.connections`` counts the
connections accepted.

The actions are data, each one of four classes:

- :class:`Close`: close without answering (the request was read: "read, then close");
  ``Close(reset=True)`` resets the connection (RST) instead of closing it (FIN), and
  ``Close(after_head=True)`` reads only the head (the client may still be writing the body);
- :class:`Hold`: never answer; hold the connection until the client goes away;
- :class:`Raw`: arbitrary bytes, optionally one at a time (``pace`` seconds apart);
- :class:`Respond`: a response from its parts: status, headers, a body given as bytes or as a
  :class:`Repeat` (generated as it is sent, so 200 MB is never built in memory), its framing
  (Content-Length, chunked, or until close), a declared length that may promise more than is
  sent, a pace for the head and for the body (slow loris), and how it ends: ``"keep"`` (the
  connection stays open), ``"close"``, ``"cut"`` (the message is left unfinished and the
  connection closed) or ``"stall"`` (left unfinished, the connection held until the client goes
  away).

The functions below (:func:`close_mid_headers`, :func:`sse`, :func:`oversized`, ...) build the
usual ones. ``FaultServer(process=True)`` runs the same server in a child process: a peer that
keeps sending while the client's loop is busy, as a remote server does. (A server in the
client's own loop sends only while the client yields, and one in a thread hardly more: a client
busy with ready data keeps the GIL. Neither can show a client that never yields.) There the
script is the actions queued before ``async with``; requests and connections are reported back.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import multiprocessing
import multiprocessing.connection
import socket
import struct
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import anyio
import anyio.abc
import anyio.to_thread
from anyio.streams.buffered import BufferedByteReceiveStream

_ID = {"id": "chatcmpl-fault", "created": 1700000000, "model": "gpt-4o-mini"}
_MESSAGE = {"role": "assistant", "content": "ok"}
_USAGE = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
_CHOICE = {"index": 0, "message": _MESSAGE, "finish_reason": "stop", "logprobs": None}
#: the default answer's body: a valid chat completion
CHAT_COMPLETION = json.dumps(
    {**_ID, "object": "chat.completion", "choices": [_CHOICE], "usage": _USAGE}
).encode()

JSON = (("content-type", "application/json"),)
EVENT_STREAM = (("content-type", "text/event-stream"),)
_GONE = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)
_REASONS = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway"}


@dataclass
class Request:
    """A request as the server read it; header names are lower-case."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    connection: int  #: which connection it came on (1 for the first accepted)


class _Peer:
    """One accepted connection: buffered reads of requests, plain or paced writes."""

    def __init__(self, stream: anyio.abc.SocketStream, number: int) -> None:
        self.stream = stream
        self.reader = BufferedByteReceiveStream(stream)
        self.number = number

    async def read_head(self) -> Request | None:
        """The next request's head (``body`` empty), or ``None`` when the client closed the
        connection between two."""
        try:
            head = await self.reader.receive_until(b"\r\n\r\n", 65536)
        except (anyio.IncompleteRead, *_GONE):
            return None
        start, *lines = head.decode("latin-1").split("\r\n")
        method, path, _ = start.split(" ", 2)
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return Request(method, path, headers, b"", self.number)

    async def read_body(self, request: Request) -> None:
        headers = request.headers
        if "content-length" in headers:
            request.body = await self.reader.receive_exactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            request.body = await self._chunked()

    async def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.receive_until(b"\r\n", 1024)).split(b";")[0], 16)
            if size == 0:
                while await self.reader.receive_until(b"\r\n", 65536):  # trailers, if any
                    pass
                return b"".join(parts)
            parts.append(await self.reader.receive_exactly(size))
            await self.reader.receive_exactly(2)

    async def send(self, data: bytes, pace: float | None = None) -> None:
        """Send *data*; with *pace*, one byte at a time, *pace* seconds apart."""
        if pace is None:
            await self.stream.send(data)
            return
        for index in range(len(data)):
            await self.stream.send(data[index : index + 1])
            await anyio.sleep(pace)

    async def hold(self) -> None:
        """Wait until the client goes away, dropping whatever it sends."""
        with contextlib.suppress(*_GONE):
            while True:
                await self.reader.receive()

    def reset(self) -> None:
        """Make the coming close a reset (RST) instead of a FIN."""
        sock = self.stream.extra(anyio.abc.SocketAttribute.raw_socket)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@dataclass
class Repeat:
    """A body generated as it is sent: *piece* *count* times, then *tail*."""

    piece: bytes
    count: int
    tail: bytes = b""

    def __iter__(self) -> Iterator[bytes]:
        yield from itertools.repeat(self.piece, self.count)
        yield self.tail

    def __len__(self) -> int:
        return len(self.piece) * self.count + len(self.tail)


class Action(Protocol):
    """What the server does with one request; returns whether to keep the connection open."""

    async def __call__(self, peer: _Peer, request: Request) -> bool: ...


@dataclass
class Close:
    """Close without answering, the request read whole first (or, ``after_head``, its head
    only: the client may still be writing the body); ``reset``: with an RST, not a FIN."""

    reset: bool = False
    after_head: bool = False

    async def __call__(self, peer: _Peer, request: Request) -> bool:
        if self.reset:
            peer.reset()
        return False


@dataclass
class Hold:
    """Never answer: hold the connection until the client goes away."""

    async def __call__(self, peer: _Peer, request: Request) -> bool:
        await peer.hold()
        return False


Ending = Literal["keep", "close", "cut", "stall"]


async def _finish(peer: _Peer, end: Ending) -> bool:
    if end == "stall":
        await peer.hold()
    return end == "keep"


@dataclass
class Raw:
    """Send *data* as it is (a whole response, or part of one); *pace*: one byte at a time."""

    data: bytes
    end: Ending = "close"
    pace: float | None = None

    async def __call__(self, peer: _Peer, request: Request) -> bool:
        await peer.send(self.data, self.pace)
        return await _finish(peer, self.end)


@dataclass
class Respond:
    """A response from its parts.

    :ivar body: bytes, or a :class:`Repeat` (generated as it is sent).
    :ivar framing: ``"length"`` (Content-Length), ``"chunked"``, or ``"close"`` (until close).
    :ivar length: the Content-Length declared (default: the body's); more than is sent makes
        the message unfinished.
    :ivar head_pace: seconds between single bytes of the head (slow loris); ``body_pace``: of
        the body.
    :ivar end: ``"keep"``, ``"close"`` (after a complete message), ``"cut"`` (the message left
        unfinished: no last chunk; then closed) or ``"stall"`` (left unfinished, then held).
    """

    status: int = 200
    body: bytes | Repeat = CHAT_COMPLETION
    headers: Sequence[tuple[str, str]] = JSON
    framing: Literal["length", "chunked", "close"] = "length"
    length: int | None = None
    head_pace: float | None = None
    body_pace: float | None = None
    end: Ending = "keep"

    def head(self) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Status')}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        if self.framing == "length":
            length = len(self.body) if self.length is None else self.length
            lines.append(f"content-length: {length}")
        elif self.framing == "chunked":
            lines.append("transfer-encoding: chunked")
        if self.framing == "close" or self.end == "close":
            lines.append("connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def pieces(self) -> Iterator[bytes]:
        body = self.body
        for piece in [body] if isinstance(body, bytes) else body:
            if piece and self.framing == "chunked":
                yield b"%x\r\n%s\r\n" % (len(piece), piece)
            elif piece:
                yield piece
        if self.framing == "chunked" and self.end in ("keep", "close"):
            yield b"0\r\n\r\n"

    async def __call__(self, peer: _Peer, request: Request) -> bool:
        await peer.send(self.head(), self.head_pace)
        for piece in self.pieces():
            await peer.send(piece, self.body_pace)
        return await _finish(peer, self.end)


# ------------------------------------------------------------------------ the usual actions


def error_body(message: str = "boom", kind: str = "server_error") -> bytes:
    """An OpenAI-style error body."""
    return json.dumps({"error": {"message": message, "type": kind, "code": None}}).encode()


def status(code: int, *headers: tuple[str, str], body: bytes | None = None) -> Respond:
    """An error status with an OpenAI-style JSON body (or *body*) and extra *headers*."""
    return Respond(status=code, body=error_body() if body is None else body, headers=JSON + headers)


def close_mid_headers() -> Raw:
    """Part of a response head, then close."""
    return Raw(b"HTTP/1.1 200 OK\r\ncontent-type: application/js", end="close")


def close_mid_body(sent: int = 20) -> Respond:
    """A head promising the whole chat completion, *sent* bytes of it, then close."""
    return Respond(body=CHAT_COMPLETION[:sent], length=len(CHAT_COMPLETION), end="cut")


def chat_chunk(content: str = "x", finish_reason: str | None = None) -> bytes:
    """One SSE event of a streamed chat completion."""
    delta = {"content": content} if finish_reason is None else {}
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
    chunk = {**_ID, "object": "chat.completion.chunk", "choices": [choice]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def sse(chunks: int = 3, *, done: bool = True) -> bytes:
    """A streamed chat completion: *chunks* content events; with *done*, a last one with
    ``finish_reason="stop"`` and ``data: [DONE]``."""
    body = b"".join(chat_chunk(f"w{i} ") for i in range(chunks))
    return body + (chat_chunk(finish_reason="stop") + b"data: [DONE]\n\n" if done else b"")


def close_mid_stream(chunks: int = 3) -> Respond:
    """A streamed chat completion cut after *chunks* events (chunked, no last chunk)."""
    return Respond(body=sse(chunks, done=False), headers=EVENT_STREAM, framing="chunked", end="cut")


def sse_flood(events: int, *, batch: int = 5000) -> Respond:
    """A streamed chat completion of *events* content events, generated *batch* at a time."""
    full, rest = divmod(events, batch)
    end = chat_chunk("x ") * rest + chat_chunk(finish_reason="stop") + b"data: [DONE]\n\n"
    body = Repeat(chat_chunk("x ") * batch, full, end)
    return Respond(body=body, headers=EVENT_STREAM, framing="chunked")


def oversized(size: int, *, chunked: bool = False, block: int = 1 << 20) -> Respond:
    """A 200 of *size* bytes (JSON content type, not JSON), generated *block* bytes at a time."""
    full, rest = divmod(size, block)
    body = Repeat(b"x" * block, full, b"x" * rest)
    return Respond(body=body, framing="chunked" if chunked else "length")


# ------------------------------------------------------------------------------- the server


class FaultServer:
    """The server; see the module docstring.

    :param process: run in a child process (the script: the actions queued before starting).
    :param send_buffer: the SO_SNDBUF of each connection, in bytes (to keep more in flight).
    """

    def __init__(self, *, process: bool = False, send_buffer: int | None = None) -> None:
        self.process = process
        self.send_buffer = send_buffer
        self.port = 0
        self._requests: list[Request] = []
        self._connections = 0
        self._actions: deque[Action] = deque()
        self._pipe: multiprocessing.connection.Connection | None = None  # to the child / parent
        self._stack = contextlib.AsyncExitStack()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[Request]:
        """Every request read so far, in order (from a child process, a moment late)."""
        return self._requests

    @property
    def connections(self) -> int:
        """The connections accepted so far."""
        return self._connections

    def script(self, *actions: Action) -> None:
        """Queue *actions*, one per coming request."""
        self._actions.extend(actions)

    def _listen(self, pipe: multiprocessing.connection.Connection) -> None:
        """In the parent of a child process (a thread): take in what it reports, until it ends."""
        with contextlib.suppress(EOFError, OSError):
            while True:
                self._record(pipe.recv(), report=False)

    def _record(self, request: Request | None, *, report: bool = True) -> None:
        """A request read (``None``: a connection accepted); told to the parent, if any."""
        if report and self._pipe is not None:
            self._pipe.send(request)
        if request is None:
            self._connections += 1
        else:
            self._requests.append(request)

    @contextlib.asynccontextmanager
    async def _serving(self) -> AsyncIterator[None]:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as group:
            group.start_soon(listener.serve, self._connection)
            yield
            group.cancel_scope.cancel()

    async def _connection(self, stream: anyio.abc.SocketStream) -> None:
        self._record(None)
        peer = _Peer(stream, self._connections)
        if self.send_buffer is not None:
            sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
        async with stream:
            with contextlib.suppress(anyio.IncompleteRead, *_GONE):
                while (request := await peer.read_head()) is not None:
                    action = self._actions.popleft() if self._actions else Respond()
                    if not getattr(action, "after_head", False):
                        await peer.read_body(request)
                    self._record(request)
                    if not await action(peer, request):
                        return

    async def __aenter__(self) -> FaultServer:
        if not self.process:
            await self._stack.enter_async_context(self._serving())
            return self
        context = multiprocessing.get_context("spawn")
        self._pipe, child_end = context.Pipe()
        actions, self._actions = list(self._actions), deque()
        child = context.Process(
            target=_child, args=(child_end, actions, self.send_buffer), daemon=True
        )
        child.start()
        child_end.close()
        self._stack.push_async_callback(anyio.to_thread.run_sync, _stop, child)
        self.port = await anyio.to_thread.run_sync(self._pipe.recv)
        listener = threading.Thread(target=self._listen, args=(self._pipe,), daemon=True)
        listener.start()
        self._stack.push_async_callback(anyio.to_thread.run_sync, listener.join, 10)
        self._stack.push_async_callback(anyio.to_thread.run_sync, _stop, child)
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._stack.__aexit__(*exc_info)


def _child(
    pipe: multiprocessing.connection.Connection, actions: list[Action], send_buffer: int | None
) -> None:
    """A child process's life: serve *actions*, report to the parent through *pipe*."""

    async def serve() -> None:
        server = FaultServer(send_buffer=send_buffer)
        server._pipe = pipe
        server.script(*actions)
        async with server:
            pipe.send(server.port)
            await anyio.sleep_forever()

    anyio.run(serve)


def _stop(child: multiprocessing.process.BaseProcess) -> None:
    child.terminate()
    child.join(10)
